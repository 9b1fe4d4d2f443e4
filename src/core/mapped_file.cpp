// mmap-backed and in-memory ByteSources.
#include "shrink/core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shrink/core/error.h"

namespace shrink {
namespace {

class MappedFile final : public ByteSource {
 public:
  explicit MappedFile(const std::string& path) : ByteSource(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw IoError(std::string("cannot open: ") + std::strerror(errno), path,
                              "check the path and its permissions");
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      ::close(fd);
      throw IoError("not a regular file", path, "pass a model file, not a directory or device");
    }
    size_ = size_t(info.st_size);
    if (size_ > 0) {
      void* address = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (address == MAP_FAILED) {
        const int saved = errno;
        ::close(fd);
        throw IoError(std::string("cannot map file: ") + std::strerror(saved), path);
      }
      data_ = static_cast<const std::byte*>(address);
    }
    ::close(fd);
  }
  ~MappedFile() override {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  }
  std::span<const std::byte> bytes() const override { return {data_, size_}; }

 private:
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::vector<std::byte> bytes, std::string name)
      : ByteSource(std::move(name)), bytes_(std::move(bytes)) {}
  std::span<const std::byte> bytes() const override { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

}  // namespace

std::shared_ptr<const ByteSource> map_file(const std::string& path) {
  return std::make_shared<MappedFile>(path);
}

std::shared_ptr<const ByteSource> memory_source(std::vector<std::byte> bytes, std::string name) {
  return std::make_shared<MemorySource>(std::move(bytes), std::move(name));
}

}  // namespace shrink
