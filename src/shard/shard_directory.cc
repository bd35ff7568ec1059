#include "cgcn/shard_directory.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <regex>

#include "cgcn/raw_reader.h"  // DigestRawInput, for CheckInput
#include "util/fd.h"
#include "util/file_util.h"

namespace fs = std::filesystem;

namespace cgcn {
namespace {
// True when `path` is a regular file (not a link, FIFO, ...) whose first bytes are `magic`.
bool RegularFileStartsWith(const std::string& path, const char (&magic)[8]) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return false;
  struct stat st {};
  char head[8] = {};
  const bool ok =
      ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::pread(fd, head, 8, 0) == 8 && std::memcmp(head, magic, 8) == 0;
  ::close(fd);
  return ok;
}
}  // namespace

Status CheckShardDirectoryIsCgcns(const std::string& dir) {
  static const std::regex kShardName("shard-[0-9]{6,}\\.cgs");
  std::error_code ec;
  std::vector<std::string> names;  // sorted, so that the message names the same entry every time
  for (const auto& entry : fs::directory_iterator(dir, ec)) names.push_back(entry.path().filename().string());
  if (ec) return Status::IoError(dir + ": cannot list: " + ec.message());
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = (fs::path(dir) / name).string();
    if (name == kManifestFileName) {
      if (!RegularFileStartsWith(path, kManifestMagic))
        return Status::InvalidArgument("its " + name + " is not a cgcn manifest");
    } else if (std::regex_match(name, kShardName)) {
      if (!RegularFileStartsWith(path, kShardMagic))
        return Status::InvalidArgument("its " + name + " is not a cgcn shard");
    } else {
      return Status::InvalidArgument("it holds '" + name + "', which cgcn does not write");
    }
  }
  return Status::Ok();
}

Result<ShardDirectory> ShardDirectory::Open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return Status::IoError(dir + ": not a shard directory (does not exist or is not a directory)");
  const std::string mpath = (fs::path(dir) / kManifestFileName).string();
  if (!fs::exists(mpath, ec))
    return Status::IoError(mpath + ": missing (not a complete shard directory; was cgcn-preprocess interrupted?)");
  CGCN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ReadWholeFile(mpath));
  CGCN_ASSIGN_OR_RETURN(Manifest m, DecodeManifest(bytes, mpath));
  ShardDirectory d;
  d.dir_ = dir;
  d.offsets_ = m.ClusterOffsets();
  d.sizes_.reserve(m.num_parts);
  for (uint32_t k = 0; k < m.num_parts; ++k) {
    d.sizes_.push_back(m.shards[k].num_nodes);
    const std::string path = d.ShardPath(k);
    uint64_t size = 0;
    if (Result<UniqueFd> f = OpenRegularFileForRead(path, &size); !f.ok())
      return f.status().WithContext("shard " + std::to_string(k) + " listed in the manifest");
    if (size != m.shards[k].file_size)
      return Status::Corruption(path + ": " + std::to_string(size) + " bytes, the manifest records " +
                                std::to_string(m.shards[k].file_size) + " (truncated, replaced, or a stale manifest)");
  }
  d.manifest_ = std::move(m);
  return d;
}

Status ShardDirectory::CheckInput(const std::string& raw_dir) const {
  if (manifest_.input_files.empty())
    return Status::Corruption(dir_ + "/MANIFEST: records no input files to check against");
  CGCN_ASSIGN_OR_RETURN(std::vector<InputFileDigest> actual,
                        DigestRawInput(RawReadOptions{raw_dir, manifest_.split_name}));
  const std::string diff = DescribeInputDifferences(manifest_.input_files, actual);
  if (!diff.empty())
    return Status::Corruption(dir_ + " is stale: it was built from a different input than " + raw_dir + " (" + diff +
                              "); rerun cgcn-preprocess");
  return Status::Ok();
}

std::string ShardDirectory::ShardPath(uint32_t cluster) const {
  return (fs::path(dir_) / ShardFileName(cluster)).string();
}

Result<MappedFile> ShardDirectory::Map(uint32_t cluster) const { return MappedFile::Open(ShardPath(cluster)); }

ShardExpectation ShardDirectory::Expectation(uint32_t cluster) const {
  ShardExpectation e;
  e.cluster_id = cluster;
  e.num_clusters = manifest_.num_parts;
  e.num_nodes = manifest_.shards[cluster].num_nodes;
  e.feat_dim = manifest_.feat_dim;
  e.num_classes = manifest_.num_classes;
  e.label_tasks = manifest_.label_tasks;
  e.total_nodes = manifest_.num_nodes;
  e.file_size = manifest_.shards[cluster].file_size;
  e.header_checksum = manifest_.shards[cluster].header_checksum;
  e.cluster_sizes = sizes_;
  return e;
}

Status ShardDirectory::Load(uint32_t cluster, SectionMask mask, ShardDecoder& decoder, ClusterData& out) const {
  Status s;
  {
    CGCN_ASSIGN_OR_RETURN(MappedFile file, Map(cluster));
    s = decoder.Decode(file.bytes(), file.path(), Expectation(cluster), mask, out);
  }  // unmapped: the mapped pages leave the resident set
  // Once unmapped, the file's clean pages can be evicted too, so old shards are not charged to
  // a memory cgroup (only with a budget: otherwise the page cache keeps them for the next epoch).
  if (drop_page_cache_) DropPageCache(ShardPath(cluster));
  return s;
}

void ShardDirectory::Prefetch(uint32_t cluster) const { ReadAhead(ShardPath(cluster)); }

}  // namespace cgcn
