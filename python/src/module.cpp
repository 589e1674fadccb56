// kiln._kiln: the module, its exception type, build information, convert and build.
#include <pybind11/stl.h>

#include <optional>

#include "bindings.h"
#include "build/engine_builder.h"
#include "build/engine_format.h"
#include "convert/convert.h"
#include "core/error.h"
#include "quantize/quantize.h"
#include "runtime/backend_factory.h"

namespace kiln::py {

pb::str utf8(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "replace");
  if (!o) throw pb::error_already_set();
  return pb::reinterpret_steal<pb::str>(o);
}

namespace {

void convert(const std::string& model_dir, const std::string& output_dir, const std::optional<std::string>& dtype,
             const std::string& rope_freq_dtype, int64_t tp_size, int64_t pp_size, bool progress) {
  ConvertOptions o;
  o.model_dir = model_dir;
  o.output_dir = output_dir;
  if (dtype) o.dtype = dtype_from_name(*dtype);
  if (rope_freq_dtype != "float32" && rope_freq_dtype != "checkpoint")
    fail("rope_freq_dtype '{}': expected 'float32' or 'checkpoint'", rope_freq_dtype);
  o.rope_freq_checkpoint_dtype = rope_freq_dtype == "checkpoint";
  o.mapping.tp_size = tp_size;
  o.mapping.pp_size = pp_size;
  o.progress = progress;
  pb::gil_scoped_release nogil;
  convert_checkpoint(o);
}

void build(const std::string& checkpoint_dir, const std::string& output_dir, const std::string& target,
           const std::optional<std::string>& dtype, const EngineLimits& limits, bool batch_invariant, bool progress) {
  BuildOptions o;
  o.checkpoint_dir = checkpoint_dir;
  o.output_dir = output_dir;
  o.target = target;
  if (dtype) o.dtype = dtype_from_name(*dtype);
  o.limits = limits;
  o.batch_invariant = batch_invariant;
  o.progress = progress;
  o.plan = target_planner(target);
  pb::gil_scoped_release nogil;
  build_engine(o);
}

void quantize(QuantizeOptions o) {
  qformat_algo(o.qformat);  // an unknown format is refused before any work
  if (needs_calibration(o.qformat, o.kv_cache_dtype) && o.calib.empty())
    fail("qformat {}{} needs calibration data: give calib (token-id sequences)", o.qformat,
         o.kv_cache_dtype.empty() ? "" : " with kv_cache_dtype " + o.kv_cache_dtype);
  pb::gil_scoped_release nogil;
  quantize_checkpoint(o);
}

}  // namespace

}  // namespace kiln::py

PYBIND11_MODULE(_kiln, m) {
  namespace pb = pybind11;
  using namespace kiln;
  m.doc() = "kiln's C++ API (the Executor, the Tokenizer, convert and build); use the `kiln` package instead.";
  pb::register_exception<Error>(m, "Error");

  m.def("build_info", [] {
    pb::dict d;
    d["version"] = kKilnVersion;
#ifdef KILN_WITH_CUDA
    d["cuda"] = true;
#else
    d["cuda"] = false;
#endif
    return d;
  }, "The kiln version and whether this build has the cuda backend.");

  m.def("convert", &py::convert, pb::arg("model_dir"), pb::arg("output_dir"), pb::arg("dtype"),
        pb::arg("rope_freq_dtype"), pb::arg("tp_size"), pb::arg("pp_size"), pb::arg("progress"),
        "kiln convert: Hugging Face folder -> kiln checkpoint (GIL released).");

  pb::class_<EngineLimits>(m, "EngineLimits", "Build limits (0: the default derived from the model).")
      .def(pb::init<>())
      .def_readwrite("max_batch_size", &EngineLimits::max_batch_size)
      .def_readwrite("max_input_len", &EngineLimits::max_input_len)
      .def_readwrite("max_seq_len", &EngineLimits::max_seq_len)
      .def_readwrite("max_num_tokens", &EngineLimits::max_num_tokens)
      .def_readwrite("max_beam_width", &EngineLimits::max_beam_width);

  pb::class_<QuantizeOptions>(m, "QuantizeOptions", "kiln::QuantizeOptions (src/quantize/quantize.h).")
      .def(pb::init<>())
      .def_readwrite("model_dir", &QuantizeOptions::model_dir)
      .def_readwrite("output_dir", &QuantizeOptions::output_dir)
      .def_readwrite("qformat", &QuantizeOptions::qformat)
      .def_readwrite("kv_cache_dtype", &QuantizeOptions::kv_cache_dtype)
      .def_readwrite("group_size", &QuantizeOptions::group_size)
      .def_readwrite("smoothquant_alpha", &QuantizeOptions::smoothquant_alpha)
      .def_readwrite("exclude", &QuantizeOptions::exclude)
      .def_readwrite("quantize_lm_head", &QuantizeOptions::quantize_lm_head)
      .def_readwrite("calib", &QuantizeOptions::calib)
      .def_readwrite("calib_source", &QuantizeOptions::calib_source)
      .def_readwrite("rope_freq_checkpoint_dtype", &QuantizeOptions::rope_freq_checkpoint_dtype)
      .def_readwrite("progress", &QuantizeOptions::progress);
  m.def("quantize", &py::quantize, pb::arg("options"),
        "kiln quantize: Hugging Face folder -> quantized kiln checkpoint (GIL released).");
  m.def("needs_calibration", &needs_calibration, pb::arg("qformat"), pb::arg("kv_cache_dtype"));

  m.def("build", &py::build, pb::arg("checkpoint_dir"), pb::arg("output_dir"), pb::arg("target"), pb::arg("dtype"),
        pb::arg("limits"), pb::arg("batch_invariant"), pb::arg("progress"),
        "kiln build: kiln checkpoint -> engine for one target (GIL released).");

  py::bind_tokenizer(m);
  py::bind_executor(m);
}
