// Learning-curve SVG (cgcn/plot.h).
#include "cgcn/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <span>

#include "util/file_util.h"

namespace cgcn {
namespace {

struct Series {
  std::string name, color;
  bool dashed = false;
  std::vector<std::pair<double, double>> points;  // (epoch, value), finite values only
};

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A "nice" tick step for a range: 1, 2 or 5 times a power of ten, about `target` ticks.
double TickStep(double span, int target) {
  if (!(span > 0)) return 1;
  const double raw = span / target;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

std::string TickText(double v, double step) {
  char buf[32];
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  std::snprintf(buf, sizeof buf, "%.*f", decimals, std::abs(v) < step * 1e-6 ? 0.0 : v);
  return buf;
}

// One panel at (x0, y0) of size w x h: frame, ticks, grid, series, legend.
void Panel(std::string& svg, double x0, double y0, double w, double h, double xmin, double xmax,
           const std::vector<Series>& series, const std::string& ylabel, bool unit_range, uint32_t selected) {
  double ymin = unit_range ? 0 : INFINITY, ymax = unit_range ? 1 : -INFINITY;
  if (!unit_range) {
    for (const Series& s : series)
      for (auto [x, y] : s.points) {
        ymin = std::min(ymin, y);
        ymax = std::max(ymax, y);
      }
    if (!(ymin <= ymax)) ymin = 0, ymax = 1;
    ymin = std::min(0.0, ymin);
    if (ymax <= ymin) ymax = ymin + 1;
    ymax += (ymax - ymin) * 0.05;
  }
  if (xmax <= xmin) xmax = xmin + 1;
  auto X = [&](double x) { return x0 + (x - xmin) / (xmax - xmin) * w; };
  auto Y = [&](double y) { return y0 + h - (y - ymin) / (ymax - ymin) * h; };
  svg += "<g class=\"panel\">\n";
  svg += "<rect x=\"" + Num(x0) + "\" y=\"" + Num(y0) + "\" width=\"" + Num(w) + "\" height=\"" + Num(h) +
         "\" fill=\"white\" stroke=\"#333\"/>\n";
  const double ys = TickStep(ymax - ymin, 5);
  for (double t = std::ceil(ymin / ys) * ys; t <= ymax + ys * 1e-9; t += ys) {
    svg += "<line x1=\"" + Num(x0) + "\" y1=\"" + Num(Y(t)) + "\" x2=\"" + Num(x0 + w) + "\" y2=\"" + Num(Y(t)) +
           "\" stroke=\"#ddd\"/>\n";
    svg += "<line x1=\"" + Num(x0 - 4) + "\" y1=\"" + Num(Y(t)) + "\" x2=\"" + Num(x0) + "\" y2=\"" + Num(Y(t)) +
           "\" stroke=\"#333\"/>\n";
    svg += "<text x=\"" + Num(x0 - 7) + "\" y=\"" + Num(Y(t) + 4) + "\" text-anchor=\"end\">" + TickText(t, ys) +
           "</text>\n";
  }
  const double xs = std::max(1.0, TickStep(xmax - xmin, 8));
  for (double t = std::ceil(xmin / xs) * xs; t <= xmax + 1e-9; t += xs) {
    svg += "<line x1=\"" + Num(X(t)) + "\" y1=\"" + Num(y0 + h) + "\" x2=\"" + Num(X(t)) + "\" y2=\"" +
           Num(y0 + h + 4) + "\" stroke=\"#333\"/>\n";
    svg += "<text x=\"" + Num(X(t)) + "\" y=\"" + Num(y0 + h + 17) + "\" text-anchor=\"middle\">" + TickText(t, xs) +
           "</text>\n";
  }
  svg += "<text x=\"" + Num(x0 + w / 2) + "\" y=\"" + Num(y0 + h + 34) + "\" text-anchor=\"middle\">epoch</text>\n";
  svg += "<text transform=\"translate(" + Num(x0 - 48) + "," + Num(y0 + h / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + Escape(ylabel) + "</text>\n";
  if (selected > 0 && selected >= xmin && selected <= xmax)
    svg += "<line class=\"selected\" x1=\"" + Num(X(selected)) + "\" y1=\"" + Num(y0) + "\" x2=\"" + Num(X(selected)) +
           "\" y2=\"" + Num(y0 + h) + "\" stroke=\"#888\" stroke-dasharray=\"2,3\"/>\n";
  for (const Series& s : series) {
    if (s.points.empty()) continue;
    svg += "<polyline class=\"series\" data-name=\"" + Escape(s.name) + "\" fill=\"none\" stroke=\"" + s.color +
           "\" stroke-width=\"1.5\"" + (s.dashed ? " stroke-dasharray=\"5,3\"" : "") + " points=\"";
    for (size_t i = 0; i < s.points.size(); ++i) {
      if (i) svg += ' ';
      svg += Num(X(s.points[i].first));
      svg += ',';
      svg += Num(Y(s.points[i].second));
    }
    svg += "\"/>\n";
  }
  // Legend, top right.
  double ly = y0 + 14;
  for (const Series& s : series) {
    const double lx = x0 + w - 150;
    svg += "<line x1=\"" + Num(lx) + "\" y1=\"" + Num(ly - 4) + "\" x2=\"" + Num(lx + 22) + "\" y2=\"" + Num(ly - 4) +
           "\" stroke=\"" + s.color + "\" stroke-width=\"2\"" + (s.dashed ? " stroke-dasharray=\"5,3\"" : "") + "/>\n";
    svg += "<text x=\"" + Num(lx + 28) + "\" y=\"" + Num(ly) + "\">" + Escape(s.name) + "</text>\n";
    ly += 16;
  }
  svg += "</g>\n";
}

}  // namespace

std::string LearningCurveSvg(const std::vector<EpochRecord>& epochs, const std::string& title,
                             uint32_t selected_epoch) {
  Series train_loss{"training loss", "#1f77b4", false, {}}, valid_loss{"validation loss", "#ff7f0e", true, {}};
  Series valid_acc{"validation accuracy", "#ff7f0e", false, {}}, test_acc{"test accuracy", "#2ca02c", false, {}};
  auto add = [](Series& s, double x, double y) {
    if (std::isfinite(y)) s.points.emplace_back(x, y);
  };
  double xmin = INFINITY, xmax = -INFINITY;
  for (const EpochRecord& r : epochs) {
    xmin = std::min(xmin, static_cast<double>(r.epoch));
    xmax = std::max(xmax, static_cast<double>(r.epoch));
    add(train_loss, r.epoch, r.loss);
    if (r.evaluated) {
      add(valid_loss, r.epoch, r.acc.valid_loss);
      add(valid_acc, r.epoch, r.acc.valid);
      add(test_acc, r.epoch, r.acc.test);
    }
  }
  if (epochs.empty()) xmin = 0, xmax = 1;
  const double W = 720, H = 560;
  std::string svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Num(W) + "\" height=\"" + Num(H) + "\" viewBox=\"0 0 " +
         Num(W) + " " + Num(H) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg +=
      "<text x=\"" + Num(W / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + Escape(title) + "</text>\n";
  Panel(svg, 80, 40, W - 110, 200, xmin, xmax, {train_loss, valid_loss}, "loss", false, selected_epoch);
  Panel(svg, 80, 300, W - 110, 200, xmin, xmax, {valid_acc, test_acc}, "accuracy", true, selected_epoch);
  svg += "</svg>\n";
  return svg;
}

Status WriteLearningCurves(const std::string& path, const std::vector<EpochRecord>& epochs, const std::string& title,
                           uint32_t selected_epoch) {
  const std::string svg = LearningCurveSvg(epochs, title, selected_epoch);
  return WriteFileAtomic(path, std::as_bytes(std::span<const char>(svg.data(), svg.size())));
}

}  // namespace cgcn
