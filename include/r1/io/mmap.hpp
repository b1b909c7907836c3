// SPDX-License-Identifier: MIT
// Read-only memory mapping of a whole file (POSIX). Model files are mapped, not read: opening a
// checkpoint touches only the pages of its headers, and tensors borrow the mapping.
//
// Only regular files are accepted. A FIFO, socket, device or directory is an error before anything
// is read (a FIFO would otherwise block the open forever, /dev/zero would never end).
// Truncating a file while it is mapped makes later reads of the lost pages raise SIGBUS; like the
// safetensors reference implementation, r1 treats that as outside its threat model (the file's
// owner can change it under any reader).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "r1/core/error.hpp"

namespace r1::io {

class MappedFile {
 public:
  /// Maps `path` read-only. `op` names the caller in error messages ("safetensors", "config"...).
  /// `max_bytes` rejects larger files before mapping them (0: no cap).
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path, const char* op,
                                                uint64_t max_bytes = 0) {
    // O_NONBLOCK so that opening a FIFO returns at once; it is rejected just below.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      const int e = errno;
      fail(op, path.string(), ": cannot open: ", std::strerror(e));
    }
    struct FdGuard {
      int fd;
      ~FdGuard() { ::close(fd); }
    } guard{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      fail(op, path.string(), ": cannot stat: ", std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      fail(op, path.string(), ": not a regular file (",
           S_ISDIR(st.st_mode)    ? "a directory"
           : S_ISFIFO(st.st_mode) ? "a FIFO"
           : S_ISCHR(st.st_mode)  ? "a character device"
           : S_ISBLK(st.st_mode)  ? "a block device"
           : S_ISSOCK(st.st_mode) ? "a socket"
                                  : "not a file",
           ")");
    }
    const uint64_t size = uint64_t(st.st_size);
    if (max_bytes != 0 && size > max_bytes) {
      fail(op, path.string(), ": file is ", size, " bytes, over the cap of ", max_bytes,
           " bytes for this kind of file");
    }
    std::shared_ptr<MappedFile> m(new MappedFile());
    m->path_ = path;
    m->size_ = size;
    if (size > 0) {
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        fail(op, path.string(), ": cannot map ", size, " bytes: ", std::strerror(e));
      }
      m->data_ = static_cast<const uint8_t*>(p);
    }
    return m;
  }

  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  /// First byte of the file; nullptr for an empty file.
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  std::string_view text() const {
    return {reinterpret_cast<const char*>(data_), std::size_t(size_)};
  }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace r1::io
