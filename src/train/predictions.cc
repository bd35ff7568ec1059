// Prediction CSVs.
#include "cgcn/predictions.h"

#include <algorithm>
#include <charconv>
#include <span>

#include "util/file_util.h"

namespace cgcn {

Status WritePredictions(const std::string& path, std::vector<Prediction> predictions) {
  std::sort(predictions.begin(), predictions.end(),
            [](const Prediction& a, const Prediction& b) { return a.node_id < b.node_id; });
  std::string text = "node_id,label\n";
  text.reserve(predictions.size() * 12 + 16);
  char buf[16];
  for (const Prediction& p : predictions) {
    text.append(buf, std::to_chars(buf, buf + sizeof buf, p.node_id).ptr);
    text.push_back(',');
    text.append(buf, std::to_chars(buf, buf + sizeof buf, p.label).ptr);
    text.push_back('\n');
  }
  return WriteFileAtomic(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

}  // namespace cgcn
