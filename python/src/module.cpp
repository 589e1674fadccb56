// kiln._kiln: the module, its exception type, build information, convert and build.
#include <pybind11/stl.h>

#include <optional>

#include "bindings.h"
#include "build/engine_builder.h"
#include "build/engine_format.h"
#include "convert/convert.h"
#include "core/error.h"
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
           const std::optional<std::string>& dtype, const EngineLimits& limits, bool batch_invariant) {
  BuildOptions o;
  o.checkpoint_dir = checkpoint_dir;
  o.output_dir = output_dir;
  o.target = target;
  if (dtype) o.dtype = dtype_from_name(*dtype);
  o.limits = limits;
  o.batch_invariant = batch_invariant;
  o.plan = target_planner(target);
  pb::gil_scoped_release nogil;
  build_engine(o);
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

  m.def("build", &py::build, pb::arg("checkpoint_dir"), pb::arg("output_dir"), pb::arg("target"), pb::arg("dtype"),
        pb::arg("limits"), pb::arg("batch_invariant"),
        "kiln build: kiln checkpoint -> engine for one target (GIL released).");

  py::bind_tokenizer(m);
  py::bind_executor(m);
}
