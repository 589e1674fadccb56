// kiln quantize: Hugging Face checkpoint -> quantized kiln checkpoint (src/quantize/quantize.h).
#include <filesystem>

#include "commands.h"
#include "core/error.h"
#include "kiln/tokenizer.h"
#include "quantize/quantize.h"
#include "text_dataset.h"

namespace kiln::cli {

namespace {

// --calib-size sequences of exactly --calib-max-seq-length tokens, cut from the documents encoded with special
// tokens and concatenated (or from the concatenated ids of a pre-tokenized *.jsonl).
std::vector<std::vector<int32_t>> calibration_sequences(const std::string& model, const std::string& path,
                                                        int64_t size, int64_t len) {
  if (size <= 0) fail("--calib-size {}: must be positive", size);
  if (len <= 0) fail("--calib-max-seq-length {}: must be positive", len);
  std::vector<int32_t> all;
  if (auto ids = read_token_dataset(path, "--calib-dataset")) {
    all = std::move(*ids);
  } else {
    const auto docs = read_text_dataset(path, "--calib-dataset");
    auto tok = Tokenizer::load(model);
    for (auto& d : docs) {
      const auto ids = tok->encode(d, true);
      all.insert(all.end(), ids.begin(), ids.end());
      if (int64_t(all.size()) >= size * len) break;
    }
  }
  if (int64_t(all.size()) < size * len)
    fail("--calib-dataset {}: {} tokens, fewer than --calib-size {} x --calib-max-seq-length {} = {}", path,
         all.size(), size, len, size * len);
  std::vector<std::vector<int32_t>> seqs;
  for (int64_t i = 0; i < size; ++i) seqs.emplace_back(all.begin() + i * len, all.begin() + (i + 1) * len);
  return seqs;
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "Hugging Face checkpoint -> quantized kiln checkpoint");
  auto o = std::make_shared<QuantizeOptions>();
  auto calib = std::make_shared<std::string>();
  auto calib_size = std::make_shared<int64_t>(512), calib_len = std::make_shared<int64_t>(512);
  auto freq = std::make_shared<std::string>("float32");
  cmd->add_option("--model", o->model_dir, "Hugging Face model folder")->required();
  cmd->add_option("--output", o->output_dir, "kiln checkpoint folder to create (must not exist)")->required();
  cmd->add_option("--qformat", o->qformat, "fp8 | fp8_rowwise | int8_sq | int8_wo | int4_wo | int4_awq | none")
      ->required();
  cmd->add_option("--kv-cache-dtype", o->kv_cache_dtype, "quantized KV cache: fp8 | int8 (calibrated per layer)");
  cmd->add_option("--calib-dataset", *calib, "calibration text: plain text, or *.jsonl of {\"text\": ...} (or of {\"input_ids\": [...]}, tokenized)");
  cmd->add_option("--calib-size", *calib_size, "calibration sequences (default 512)");
  cmd->add_option("--calib-max-seq-length", *calib_len, "tokens per calibration sequence (default 512)");
  cmd->add_option("--group-size", o->group_size, "inputs per scale (int4 default 128; int8_wo: per channel)");
  cmd->add_option("--smoothquant-alpha", o->smoothquant_alpha, "int8_sq migration strength (default 0.5)");
  cmd->add_option("--exclude", o->exclude, "linear layers left in float, kiln names with * wildcards "
                                           "(layers.0.mlp.down, layers.*.attention.qkv); lm_head always unless "
                                           "--quantize-lm-head")
      ->delimiter(',');
  cmd->add_flag("--quantize-lm-head", o->quantize_lm_head, "quantize the lm_head too");
  cmd->add_option("--rope-freq-dtype", *freq, "as for kiln convert: float32 (default) | checkpoint")
      ->check(CLI::IsMember({"checkpoint", "float32"}));
  cmd->add_flag("!--no-progress", o->progress, "no progress bars");
  cmd->callback([o, calib, calib_size, calib_len, freq] {
    o->rope_freq_checkpoint_dtype = *freq == "checkpoint";
    qformat_algo(o->qformat);  // an unknown format is refused before any work
    if (!std::filesystem::is_directory(o->model_dir)) fail("--model {}: not a directory", o->model_dir);
    if (std::filesystem::exists(o->output_dir)) fail("--output {}: already exists", o->output_dir);
    if (needs_calibration(o->qformat, o->kv_cache_dtype)) {
      if (calib->empty())
        fail("--qformat {}{} needs calibration text: give --calib-dataset", o->qformat,
             o->kv_cache_dtype.empty() ? "" : " --kv-cache-dtype " + o->kv_cache_dtype);
      o->calib = calibration_sequences(o->model_dir, *calib, *calib_size, *calib_len);
      o->calib_source = std::filesystem::path(*calib).filename().string();
    }
    quantize_checkpoint(*o);
  });
}

}  // namespace kiln::cli
