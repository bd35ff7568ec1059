// Prediction CSVs.
#include "cgcn/predictions.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <numeric>
#include <span>

#include "util/file_util.h"

namespace cgcn {
namespace {
constexpr std::string_view kHeader = "node_id,label";
}  // namespace

Status WritePredictions(const std::string& path, std::vector<Prediction> predictions,
                        std::span<const float> probabilities, uint32_t classes) {
  const bool with_p = classes > 0;
  if (with_p && probabilities.size() != predictions.size() * classes)
    return Status::Internal(path + ": " + std::to_string(probabilities.size()) + " probabilities for " +
                            std::to_string(predictions.size()) + " nodes of " + std::to_string(classes) + " classes");
  std::vector<uint64_t> order(predictions.size());
  std::iota(order.begin(), order.end(), uint64_t{0});
  std::sort(order.begin(), order.end(),
            [&](uint64_t a, uint64_t b) { return predictions[a].node_id < predictions[b].node_id; });
  std::string text(kHeader);
  for (uint32_t k = 0; with_p && k < classes; ++k) text += ",p" + std::to_string(k);
  text.push_back('\n');
  text.reserve(predictions.size() * (12 + uint64_t{classes} * 12) + text.size());
  char buf[32];
  for (uint64_t i : order) {
    const Prediction& p = predictions[i];
    text.append(buf, std::to_chars(buf, buf + sizeof buf, p.node_id).ptr);
    text.push_back(',');
    text.append(buf, std::to_chars(buf, buf + sizeof buf, p.label).ptr);
    for (uint32_t k = 0; with_p && k < classes; ++k) {
      text.push_back(',');
      text.append(buf, std::to_chars(buf, buf + sizeof buf, probabilities[i * classes + k]).ptr);
    }
    text.push_back('\n');
  }
  return WriteFileAtomic(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

Status CheckPredictionsPath(const std::string& flag, const std::string& path) {
  if (path.empty()) return Status::Ok();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Ok();  // missing (or unreadable: OutputPaths reports what matters)
  std::string first(256, '\0');
  in.read(first.data(), static_cast<std::streamsize>(first.size()));
  first.resize(static_cast<size_t>(in.gcount()));
  if (first.empty() || first.starts_with(kHeader)) return Status::Ok();
  first = first.substr(0, first.find('\n'));
  if (first.size() > 60) first = first.substr(0, 60) + "...";
  for (char& c : first)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  return Status::InvalidArgument(flag + " " + path + ": exists and is not a predictions file cgcn wrote (its first " +
                                 "line is '" + first + "', expected '" + std::string(kHeader) +
                                 "...'); remove it or choose another path");
}

}  // namespace cgcn
