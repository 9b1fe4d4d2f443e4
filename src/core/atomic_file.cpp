// Temporary file + fsync + rename, so that readers never see a half-written model.
#include "shrink/core/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "shrink/core/error.h"

namespace shrink {

AtomicFileWriter::AtomicFileWriter(const std::string& path) : path_(path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string name_template = dir + "/." + base + ".partial-XXXXXX";
  std::vector<char> pattern(name_template.begin(), name_template.end());
  pattern.push_back('\0');
  const int fd = mkstemp(pattern.data());
  if (fd < 0)
    throw IoError(std::string("cannot create a file in this directory: ") + std::strerror(errno),
                  path, "check that the directory exists and is writable");
  temp_path_ = pattern.data();
  file_ = fdopen(fd, "wb");
  if (!file_) {
    ::close(fd);
    ::unlink(temp_path_.c_str());
    throw IoError("cannot open temporary file", temp_path_);
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (file_) std::fclose(file_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t bytes) {
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes)
    throw IoError(std::string("write failed: ") + std::strerror(errno), path_,
                  "is the disk full?");
  written_ += bytes;
}

void AtomicFileWriter::write_zeros(size_t bytes) {
  static const char zeros[4096] = {};
  while (bytes) {
    const size_t chunk = bytes < sizeof zeros ? bytes : sizeof zeros;
    write(zeros, chunk);
    bytes -= chunk;
  }
}

void AtomicFileWriter::commit() {
  if (std::fflush(file_) != 0 || ::fsync(fileno(file_)) != 0)
    throw IoError(std::string("flush failed: ") + std::strerror(errno), path_, "is the disk full?");
  std::fclose(file_);
  file_ = nullptr;
  if (::chmod(temp_path_.c_str(), 0644) != 0 || ::rename(temp_path_.c_str(), path_.c_str()) != 0)
    throw IoError(std::string("cannot move the finished file into place: ") + std::strerror(errno),
                  path_);
  committed_ = true;
}

}  // namespace shrink
