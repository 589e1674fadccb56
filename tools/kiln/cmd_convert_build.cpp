// kiln convert and kiln build.
#include "build/engine_builder.h"
#include "commands.h"
#include "convert/convert.h"
#include "core/error.h"
#include "runtime/backend_factory.h"

namespace kiln::cli {

void register_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand("convert", "Hugging Face checkpoint -> kiln checkpoint");
  auto o = std::make_shared<ConvertOptions>();
  auto dtype = std::make_shared<std::string>();
  cmd->add_option("--model", o->model_dir, "Hugging Face model folder (config.json, *.safetensors)")->required();
  cmd->add_option("--output", o->output_dir, "kiln checkpoint folder to create (must not exist)")->required();
  cmd->add_option("--dtype", *dtype, "weight dtype: float32 | float16 | bfloat16 (default: the checkpoint's)")
      ->check(CLI::IsMember({"float32", "float16", "bfloat16"}));
  auto freq = std::make_shared<std::string>("float32");
  cmd->add_option("--rope-freq-dtype", *freq,
                  "RoPE frequencies: float32 (default; as transformers' from_pretrained, vLLM and TensorRT-LLM compute "
                  "them) | checkpoint (rounded to the checkpoint's dtype, as for a model cast to it in memory)")
      ->check(CLI::IsMember({"checkpoint", "float32"}));
  cmd->add_option("--tp-size", o->mapping.tp_size, "tensor-parallel ranks (default 1; only 1 is supported yet)");
  cmd->add_option("--pp-size", o->mapping.pp_size, "pipeline-parallel ranks (default 1; only 1 is supported yet)");
  cmd->callback([o, dtype, freq] {
    if (!dtype->empty()) o->dtype = dtype_from_name(*dtype);
    o->rope_freq_checkpoint_dtype = *freq == "checkpoint";
    convert_checkpoint(*o);
  });
}

void register_build(CLI::App& app) {
  auto* cmd = app.add_subcommand("build", "kiln checkpoint -> engine for one target");
  auto o = std::make_shared<BuildOptions>();
  auto dtype = std::make_shared<std::string>();
  auto* ck = cmd->add_option("--checkpoint", o->checkpoint_dir, "kiln checkpoint folder");
  auto* syn = cmd->add_option("--synthetic", o->synthetic_config,
                              "config.json (kiln or Hugging Face): an engine of random weights made at load");
  ck->excludes(syn);
  syn->excludes(ck);
  cmd->add_option("--output", o->output_dir, "engine folder to create (must not exist)")->required();
  cmd->add_option("--target", o->target, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--dtype", *dtype, "compute dtype for cuda: float16 | bfloat16")
      ->check(CLI::IsMember({"float32", "float16", "bfloat16"}));
  cmd->add_option("--max-batch-size", o->limits.max_batch_size, "sequences per step (default 8)");
  cmd->add_option("--max-input-len", o->limits.max_input_len, "longest prompt (default: max-seq-len)");
  cmd->add_option("--max-seq-len", o->limits.max_seq_len, "prompt + output (default: the model's positions)");
  cmd->add_option("--max-num-tokens", o->limits.max_num_tokens, "tokens per step (default min(8192, B x S))");
  cmd->add_option("--max-beam-width", o->limits.max_beam_width, "widest beam search (default 1)");
  cmd->add_flag("--batch-invariant", o->batch_invariant,
                "outputs independent of the batch, chunking, preemption and prefix reuse (cuda: slower; the cpu "
                "target always is)");
  cmd->callback([o, dtype] {
    if (!dtype->empty()) o->dtype = dtype_from_name(*dtype);
    if (o->checkpoint_dir.empty() && o->synthetic_config.empty()) fail("kiln build: --checkpoint or --synthetic is required");
    o->plan = target_planner(o->target);
    build_engine(*o);
  });
}

}  // namespace kiln::cli
