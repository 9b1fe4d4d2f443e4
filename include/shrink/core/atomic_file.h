// Writes a file atomically: bytes go to a temporary file beside the target, which is fsynced and
// renamed into place on commit(). An interrupted or failed write leaves the target untouched.
#pragma once
#include <cstddef>
#include <cstdio>
#include <string>

namespace shrink {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);  // throws IoError
  ~AtomicFileWriter();                                 // removes the temporary unless committed
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t bytes);
  void write_zeros(size_t bytes);
  uint64_t written() const { return written_; }
  void commit();

 private:
  std::string path_, temp_path_;
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace shrink
