// Checking, before a run starts, every file it will write: so that a run never trains for hours
// and then fails to save, and never writes over its own input. (Directories a run creates and
// publishes whole, such as cgcn-preprocess --out, go through StagedDirectory, util/output_dir.h.)
#pragma once

#include <string>
#include <vector>

#include "cgcn/status.h"

namespace cgcn {

class OutputPaths {
 public:
  // A file the run writes (created or replaced). `flag` names it in messages ("--save-model").
  // Empty paths are ignored.
  void AddFile(std::string flag, std::string path);
  // A directory the run creates if missing and writes `file_name` into.
  void AddDirectory(std::string flag, std::string dir, std::string file_name);
  // An input directory: no output may be it or lie inside it. `what` describes it ("the shard directory").
  void AddInputDirectory(std::string what, std::string dir);
  // An input file: no output may be it.
  void AddInputFile(std::string what, std::string path);

  // For each output: not inside an input directory and not an input file; a file output is not
  // an existing directory, device or pipe, and its directory exists; a directory output is not
  // an existing file; files can be created where each will be written (probed with a file that
  // is never linked, or one created and removed at once); no two outputs are the same file.
  // kInvalidArgument for a conflict, kIoError for a missing or unwritable directory; the
  // message names the flag and the path. Writes nothing.
  Status Check() const;

 private:
  struct Output {
    std::string flag, path, file_name;  // file_name: for directories
    bool directory = false;
  };
  struct Input {
    std::string what, path;
    bool directory = false;
  };
  std::vector<Output> outputs_;
  std::vector<Input> inputs_;
};

// A directory where the run will create scratch files: exists, is a directory, and a file can be
// created in it. `what` names it in the message ("--tmp-dir /scratch").
Status CheckScratchDirectory(const std::string& what, const std::string& dir);

}  // namespace cgcn
