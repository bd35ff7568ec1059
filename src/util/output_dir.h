// How cgcn writes a directory the user named (cgcn-preprocess --out, cgcn-synth --out) without
// ever destroying or losing what the user has (docs/RELIABILITY.md, "Never destroy what the user
// has"):
//  - the path is resolved first: a symbolic link at OUT is followed and the directory it points
//    to is the one written or replaced, the link itself is kept; a dangling link is refused;
//  - OUT must not be, contain or lie inside any input directory;
//  - an exclusive lock, the file "OUT.cgcn-lock" (flock, removed at the end), keeps two cgcn runs
//    from writing the same OUT: the second one fails at once, naming the first one's pid;
//  - an existing OUT is replaced only with `overwrite` and only when `is_replaceable` recognizes
//    it as a directory cgcn made (for shards: a MANIFEST and shard files, nothing else);
//  - everything is written into a temporary sibling "OUT.cgcn-tmp.<random>" whose first file is
//    a marker (".cgcn-temporary", naming the token, flock-held while the run lives); Publish
//    swaps it into place atomically (renameat2 RENAME_NOREPLACE / RENAME_EXCHANGE) and refuses to
//    replace anything it did not check at the start;
//  - a killed run's temporary is removed by the next run only when its marker proves cgcn made it
//    and no live process holds it, or, where the marker is already gone (a run killed while
//    publishing), when the dead run's lock file named it ("temp <token>", written before the
//    temporary is created) and it is empty or `is_replaceable` accepts it; every other name is
//    left alone.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "cgcn/interrupt.h"
#include "cgcn/status.h"

namespace cgcn {

struct OutputDirOptions {
  std::string path;                 // as the user gave it
  std::string flag = "--out";       // for messages
  std::string what = "output";      // "shard directory", "raw directory": for messages
  bool overwrite = false;           // replace an existing directory that is_replaceable accepts
  std::vector<std::string> inputs;  // directories OUT must not be, contain or lie inside
  // Ok when the existing directory at the given path is one cgcn made and may be replaced; else
  // a Status saying what is there that cgcn did not write.
  std::function<Status(const std::string& dir)> is_replaceable;
};

// A directory being written: the lock, the marked temporary, and the atomic publish.
class StagedDirectory {
 public:
  // Resolves and checks the path, takes the lock, removes provably dead temporaries of earlier
  // runs, and creates the marked temporary directory. Fails before anything is written.
  static Result<StagedDirectory> Create(const OutputDirOptions& options);
  StagedDirectory(StagedDirectory&& o) noexcept;
  StagedDirectory& operator=(StagedDirectory&&) = delete;
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;
  // Unpublished: removes the temporary directory. Always: releases the lock.
  ~StagedDirectory();

  const std::string& target() const { return target_; }  // the resolved OUT
  const std::string& temp_dir() const { return temp_; }  // write everything here
  // Removes the marker, fsyncs, and moves the temporary into place atomically: where OUT did not
  // exist it must still not exist; where it existed (overwrite) it must still be the directory
  // checked at Create, which is then removed. Call once, after everything is written and fsynced.
  Status Publish();

 private:
  StagedDirectory() = default;
  void Abandon();
  std::string target_, temp_, lock_path_, marker_;
  int lock_fd_ = -1, marker_fd_ = -1;
  bool existed_ = false;
  dev_t old_dev_ = 0;
  ino_t old_ino_ = 0;
  bool armed_ = false;  // temp_ exists and is ours to remove
  std::function<Status(const std::string&)> is_replaceable_;
  InterruptCleanup temp_cleanup_, lock_cleanup_;
};

// Whether `inner` is `outer` or lies below it (both as given: resolve them first).
bool PathIsWithin(const std::string& inner, const std::string& outer);
// Absolute, with symbolic links and ".." resolved as far as the path exists.
std::string ResolvePath(const std::string& path);
// 16 random hex digits, for names of temporaries.
std::string RandomHexToken();
// What names cgcn's temporaries beside a target: "TARGET.cgcn-tmp.<16 hex digits>", for
// directories (StagedDirectory) and files (WriteFileAtomic) alike.
inline constexpr const char* kTempInfix = ".cgcn-tmp.";

}  // namespace cgcn
