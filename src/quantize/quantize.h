// kiln quantize: Hugging Face checkpoint -> quantized kiln checkpoint (TensorRT-LLM's quantize.py). The float
// checkpoint is converted, built into a cpu engine and calibrated with kiln's own forward pass where the format
// needs activation statistics; then every linear layer that is not excluded is quantized:
//
// | --qformat    | quant_algo                    | weights                         | activations / search          |
// |--------------|-------------------------------|---------------------------------|-------------------------------|
// | fp8          | FP8                           | fp8 e4m3, per tensor            | static per-tensor input_scale |
// | fp8_rowwise  | FP8_PER_CHANNEL_PER_TOKEN     | fp8 e4m3, per channel           | per token at run time         |
// | int8_sq      | W8A8_SQ_PER_CHANNEL_PER_TOKEN | int8, per channel, smoothed     | per token at run time         |
// | int8_wo      | W8A16                         | int8, per channel (or group)    | float                         |
// | int4_wo      | W4A16                         | int4, per group (128)           | float                         |
// | int4_awq     | W4A16_AWQ                     | int4, per group (128), AWQ      | float, pre_quant_scale        |
//
// Scales are absmax / qmax (src/quantize/quant_weights.h); static activation and KV-cache scales are the
// calibration absmax / qmax. SmoothQuant (alpha): s_k = amax_x[k]^alpha / amax_w[k]^(1 - alpha), x / s folded
// into the op before (input_norm for qkv, post_norm for gate_up / fc, the v rows of qkv for dense (s shared by the
// query heads of a kv head), the up rows of gate_up for down; none for GELU's down), w * s into the weight.
// AWQ (awq-lite): per linear layer, s = mean|x|^alpha normalized by sqrt(max s * min s), alpha on a grid of 20 in
// [0, 1), the one that minimizes the output error over the kept calibration rows; weight Q(w * s),
// pre_quant_scale 1 / s. The lm_head stays in float unless asked; embeddings and norms always do.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

struct QuantizeOptions {
  std::string model_dir, output_dir;
  std::string qformat;            // the table above, or "none" (KV cache only)
  std::string kv_cache_dtype;     // "", "fp8" or "int8"
  int64_t group_size = 0;         // 0: the format's default (128 for int4; per channel for int8_wo)
  double smoothquant_alpha = 0.5;
  std::vector<std::string> exclude;  // kiln module patterns left in float, besides lm_head
  bool quantize_lm_head = false;
  // Calibration sequences (token ids, each one forward pass) and where they came from.
  std::vector<std::vector<int32_t>> calib;
  std::string calib_source;
  int64_t calib_rows_kept = 512;  // per layer, for the AWQ search
  bool rope_freq_checkpoint_dtype = false;
  bool progress = true;
};

// The quant_algo name of a --qformat ("FP8", ...; "null" for none); throws naming the flag for an unknown one.
std::string qformat_algo(const std::string& qformat);
// Whether the format (and KV cache dtype) needs calibration data.
bool needs_calibration(const std::string& qformat, const std::string& kv_cache_dtype);

void quantize_checkpoint(const QuantizeOptions& o);

}  // namespace kiln
