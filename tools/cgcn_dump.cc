// cgcn-dump: summary, one shard's contents, or full verification of a shard directory.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cgcn/byte_size.h"
#include "cgcn/cli.h"
#include "cgcn/dump.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Inspects and verifies a shard directory written by cgcn-preprocess. Without options: a table of the "
      "manifest and every shard. --verify checks every checksum and structural invariant and exits "
      "non-zero naming the file and section of the first problem.",
      "cgcn-dump"};
  cgcn::DumpOptions o;
  uint32_t shard = 0;
  app.add_option("SHARD_DIR", o.dir, "shard directory")->required();
  auto* shard_opt = cgcn::cli::AddNumber(app, "--shard", &shard, "print the contents of shard K");
  app.add_flag("--verify", o.verify, "verify every checksum and invariant");
  app.add_flag("--json", o.json, "machine-readable JSON output");
  app.add_option("--check-input", o.check_input,
                 "also check that RAW_DIR is, file for file, the input the shards were built from");
  cgcn::cli::AddNumber(app, "--rows", &o.max_rows, "rows to show per shard with --shard");
  cgcn::cli::AddVersionFlag(app);
  CGCN_PARSE_FLAGS(app, argc, argv);
  if (*shard_opt) o.shard = shard;
  const cgcn::Status s = cgcn::Dump(o, std::cout);
  std::cout.flush();
  if (!s.ok()) return cgcn::cli::Fail("cgcn-dump", s);
  return 0;
}
