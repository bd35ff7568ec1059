// A whole training run as cgcn-train performs it: open the shards (and check them against the
// raw input), check the options and every path the run will write, train, evaluate, and write
// the metrics, the model and the predictions; then a one-line JSON summary.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cgcn/dense.h"
#include "cgcn/manifest.h"
#include "cgcn/memory_plan.h"
#include "cgcn/progress.h"
#include "cgcn/status.h"
#include "cgcn/train.h"

namespace cgcn {

struct TrainRunOptions {
  std::string shards_dir;   // written by cgcn-preprocess
  std::string check_input;  // optional: refuse unless this raw directory is the shards' input, file for file
  TrainOptions train;       // train.predict follows predict_out
  std::string metrics_out;  // optional: JSON Lines, one record per epoch (appended to with train.resume)
  bool log_steps = false;   // also one record per training step in metrics_out
  std::string save_model;   // optional: the trained model (docs/FORMAT.md)
  std::string predict_out;  // optional: "node_id,label" for every node
  std::string plot_out;     // optional: learning curves, SVG (cgcn/plot.h)
  // Runs with seeds train.seed .. train.seed + runs - 1 on the same shards. The model, the
  // predictions and the plot are those of the run with the best validation accuracy (the
  // first of equals); the summary holds every run and the mean and standard deviation. Not
  // with a checkpoint directory.
  uint32_t runs = 1;
  uint32_t threads = 0;                       // worker threads (0: TBB's default, every core)
  DenseBackend gemm = DefaultDenseBackend();  // the dense products' library (cgcn/dense.h)
  DenseCompute compute = DenseCompute::kF32;  // and their input type
};

struct TrainRunCallbacks {
  // Once the shards are open and the options and output paths are checked, before training.
  std::function<void(const Manifest&, uint32_t threads)> on_start;
  std::function<void(const MemoryPlan&)> on_plan;  // with a memory budget, before the first epoch
  std::function<void(const EpochRecord&)> on_epoch;
  std::function<void(uint32_t run, uint64_t seed, const TrainReport&)> on_run;  // after each run
  ProgressFn progress;
};

// One run of several (TrainRunOptions::runs).
struct RunResult {
  uint64_t seed = 0;
  Accuracy acc;  // of the run's returned model
  uint32_t final_epoch = 0, trained_through = 0;
};
// Mean and sample standard deviation (n - 1; 0 for one value), over the finite values.
struct MeanStd {
  double mean = 0, std = 0;
};
MeanStd MeanAndStd(const std::vector<double>& values);

struct TrainRunReport {
  TrainReport train;            // train.predictions is empty: they went to predict_out (with runs: the selected run's)
  std::vector<RunResult> runs;  // every run, in order
  uint32_t selected_run = 0;    // index into runs of the run whose outputs were written
  bool plot_written = false;
  uint64_t num_nodes = 0;
  bool model_written = false;
  bool predictions_written = false;
  // Outputs that could not be written (each Status names the flag and the path). The run writes
  // every other output regardless, and the summary lists these under "errors".
  std::vector<Status> errors;
  // One line of JSON (no newline): accuracies, epochs, timing, memory and, when outputs failed, "errors".
  std::string summary_json;
};

// Fails, before any training and without writing anything, when the shards cannot be opened or
// are stale (check_input), an option is out of bounds (TrainOptions::Validate), or an output
// path cannot be written: its directory is missing or not writable, it is a directory or not a
// regular file, it lies inside the shard directory or is an input file, two outputs are the same
// file, or --checkpoint already holds a checkpoint and train.resume is not set. Fails during
// training as Train does. After training, a write that fails is recorded in `errors` and the
// run goes on: the report is returned, and the caller decides the exit status.
Result<TrainRunReport> RunTraining(const TrainRunOptions& options, const TrainRunCallbacks& callbacks = {});

}  // namespace cgcn
