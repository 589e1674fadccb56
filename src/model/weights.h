// kiln's one tensor naming scheme, shared by checkpoints and engines, and the list of tensors a config needs.
//
//   embed.weight                       [V, H]
//   pos_embed.weight                   [P, H]          learned positions (GPT-2)
//   layers.{i}.input_norm.{weight,bias}                [H]
//   layers.{i}.attention.qkv.{weight,bias}             [(nh + 2 nkv) hd, H]   q rows, then k, then v
//   layers.{i}.attention.{q_norm,k_norm}.weight        [hd]            (Qwen3)
//   layers.{i}.attention.dense.{weight,bias}           [H, nh hd]
//   layers.{i}.post_norm.{weight,bias}                 [H]
//   layers.{i}.mlp.gate_up.{weight,bias}               [2 I, H]        gate rows, then up (SiLU-gated)
//   layers.{i}.mlp.fc.{weight,bias}                    [I, H]          (GELU)
//   layers.{i}.mlp.down.{weight,bias}                  [H, I]
//   layers.{i}.moe.router.weight                       [E, H]
//   layers.{i}.moe.gate_up.weight                      [E, 2 I, H]
//   layers.{i}.moe.down.weight                         [E, H, I]
//   final_norm.{weight,bias}                           [H]
//   lm_head.weight                                     [V, H]          absent when embeddings are tied
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace kiln {

struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor a checkpoint or engine for this config must hold, with its shape.
std::vector<WeightSpec> expected_weights(const ModelConfig& c);

class SafetensorsFile;

// Refuses a weight file that does not hold exactly `specs`: a missing tensor, a wrong shape, or a tensor the
// model does not have (an engine.json or config.json whose num_layers was edited). Names the file and tensor;
// `config` is the file the specs came from.
void check_weight_set(const SafetensorsFile& f, const std::vector<WeightSpec>& specs, const std::string& config);

std::string layer_name(int64_t layer, const std::string& suffix);  // "layers.{i}.{suffix}"

}  // namespace kiln
