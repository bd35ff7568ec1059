// Large arrays backed by transparent huge pages where the kernel allows them.
//
// An [N x width] activation array is touched page by page the first time it is written, and each
// 4 KiB page costs a page fault: on a products-sized evaluation that is a million faults, and on
// the paravirtualized VMs measured here the faults alone took about a quarter of the evaluation's
// time (perf: pvm_irq_enable under exc_page_fault). An anonymous mapping advised MADV_HUGEPAGE
// is backed by 2 MiB pages in Debian's default THP mode ("madvise"), one fault per 2 MiB. Where
// THP is off the advice is ignored and the array behaves as any other allocation.
// Like new T[n], the contents start undefined (in fact zero) and no constructor runs: for
// trivially copyable types only.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>

namespace cgcn {

template <typename T>
class HugePageArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  HugePageArray() = default;
  // n elements; throws std::bad_alloc when the mapping fails, as new T[n] would.
  explicit HugePageArray(size_t n) : bytes_(n * sizeof(T)) {
    if (bytes_ == 0) return;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    // Below 2 MiB no huge page fits; the advice may fail (THP compiled out): the memory is fine.
    if (bytes_ >= (size_t{2} << 20)) madvise(p, bytes_, MADV_HUGEPAGE);
    data_ = static_cast<T*>(p);
  }
  HugePageArray(HugePageArray&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  HugePageArray& operator=(HugePageArray&& o) noexcept {
    if (this != &o) {
      Release();
      data_ = std::exchange(o.data_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  ~HugePageArray() { Release(); }

  T* get() const { return data_; }
  size_t size() const { return bytes_ / sizeof(T); }

 private:
  void Release() {
    if (data_ != nullptr) munmap(data_, bytes_);
    data_ = nullptr;
    bytes_ = 0;
  }
  T* data_ = nullptr;
  size_t bytes_ = 0;
};

// Memory handed out in 64-byte-aligned pieces from one huge-page-backed mapping of `capacity`
// bytes (HugePageArray), for many arrays of one lifetime (the decoded-cluster cache), which would
// otherwise each be a malloc of fresh 4 KiB pages. Only the pieces handed out are ever touched,
// so the resident memory is what they take, never more than the capacity. Thread-safe.
class HugePageArena {
 public:
  explicit HugePageArena(size_t capacity) : space_(capacity) {}
  static size_t Padded(size_t bytes) { return (bytes + 63) & ~size_t{63}; }
  // Padded(bytes) of undefined contents, or null when they do not fit the capacity's rest.
  void* TryAllocate(size_t bytes) {
    bytes = Padded(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    if (used_ + bytes > space_.size()) return nullptr;
    void* p = space_.get() + used_;
    used_ += bytes;
    return p;
  }
  // Hands the pieces' pages back to the system (MADV_DONTNEED); the capacity stays available.
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    if (used_ != 0) madvise(space_.get(), used_, MADV_DONTNEED);
    used_ = 0;
  }
  size_t used_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return used_;
  }

 private:
  HugePageArray<std::byte> space_;
  mutable std::mutex mu_;
  size_t used_ = 0;
};

}  // namespace cgcn
