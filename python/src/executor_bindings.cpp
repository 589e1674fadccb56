// kiln._kiln.Executor, Request and Response over kiln::Executor (include/kiln/executor.h).
//
// Every call that waits or works (loading, enqueue, await, cancel, close) releases the GIL. close() frees the engine
// while other threads may still be inside a call: calls hold a shared lock, close() the exclusive one, and the Python
// layer only ever awaits with a timeout, so close() waits at most that long.
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "bindings.h"
#include "core/error.h"
#include "kiln/executor.h"
#include "runtime/engine.h"

namespace kiln::py {

namespace {

class PyExecutor {
 public:
  PyExecutor(const std::string& engine_dir, const ExecutorConfig& cfg) {
    pb::gil_scoped_release nogil;
    ex_ = std::make_unique<Executor>(engine_dir, cfg);
    tokens_per_block_ = cfg.tokens_per_block;
  }
  ~PyExecutor() {
    pb::gil_scoped_release nogil;
    std::unique_lock lk(mu_);
    ex_.reset();
  }

  void check(const Request& r) {
    pb::gil_scoped_release nogil;
    std::shared_lock lk(mu_);
    live().check(r);
  }
  RequestId enqueue(const Request& r) {
    pb::gil_scoped_release nogil;
    std::shared_lock lk(mu_);
    return live().enqueue(r);
  }
  bool cancel(RequestId id) {
    pb::gil_scoped_release nogil;
    std::shared_lock lk(mu_);
    return live().cancel(id);
  }
  // Responses of every request (`id` unset) or of one, waiting at most timeout_ms for the first.
  std::vector<Response> await(std::optional<RequestId> id, int64_t timeout_ms) {
    pb::gil_scoped_release nogil;
    std::shared_lock lk(mu_);
    const auto t = std::chrono::milliseconds(timeout_ms);
    return id ? live().await_responses(*id, t) : live().await_responses(t);
  }
  Stats stats() {
    std::shared_lock lk(mu_);
    return live().stats();
  }
  pb::dict info() {
    std::shared_lock lk(mu_);
    const Engine& e = live().engine();
    pb::dict d;
    d["target"] = e.info().target;
    d["max_batch_size"] = e.limits().max_batch_size;
    d["max_input_len"] = e.limits().max_input_len;
    d["max_seq_len"] = e.limits().max_seq_len;
    d["max_num_tokens"] = e.limits().max_num_tokens;
    d["max_beam_width"] = e.limits().max_beam_width;
    d["vocab_size"] = e.model().vocab_size;
    d["eos_token_ids"] = e.model().eos_token_ids;
    d["num_kv_blocks"] = live().num_kv_blocks();
    d["tokens_per_block"] = tokens_per_block_;
    return d;
  }
  void close() {
    pb::gil_scoped_release nogil;
    std::unique_lock lk(mu_);
    ex_.reset();
  }
  bool closed() {
    std::shared_lock lk(mu_);
    return !ex_;
  }

 private:
  Executor& live() {
    if (!ex_) fail("the LLM is closed");
    return *ex_;
  }

  std::shared_mutex mu_;
  std::unique_ptr<Executor> ex_;
  int64_t tokens_per_block_ = 0;
};

EarlyStopping early_stopping_from(const pb::object& v) {
  if (pb::isinstance<pb::bool_>(v)) return v.cast<bool>() ? EarlyStopping::Eager : EarlyStopping::Heuristic;
  if (pb::isinstance<pb::str>(v) && v.cast<std::string>() == "never") return EarlyStopping::Never;
  fail("early_stopping {}: expected True, False or 'never'", pb::repr(v).cast<std::string>());
}

pb::object early_stopping_to(EarlyStopping e) {
  if (e == EarlyStopping::Never) return pb::str("never");
  return pb::bool_(e == EarlyStopping::Eager);
}

template <typename T>
void sampling_field(pb::class_<Request>& c, const char* name, T SamplingParams::*f) {
  c.def_property(name, [f](const Request& r) { return r.sampling.*f; }, [f](Request& r, T v) { r.sampling.*f = v; });
}

}  // namespace

void bind_executor(pb::module_& m) {
  pb::class_<ExecutorConfig>(m, "ExecutorConfig", "kiln::ExecutorConfig (include/kiln/executor.h).")
      .def(pb::init<>())
      .def_property("scheduler_policy", [](const ExecutorConfig& c) { return scheduler_policy_name(c.policy); },
                    [](ExecutorConfig& c, const std::string& s) { c.policy = scheduler_policy_from_name(s); })
      .def_readwrite("kv_cache_bytes", &ExecutorConfig::kv_cache_bytes)
      .def_readwrite("kv_cache_fraction", &ExecutorConfig::kv_cache_fraction)
      .def_readwrite("tokens_per_block", &ExecutorConfig::tokens_per_block)
      .def_readwrite("max_num_tokens", &ExecutorConfig::max_num_tokens)
      .def_readwrite("max_batch_size", &ExecutorConfig::max_batch_size)
      .def_readwrite("enable_prefix_reuse", &ExecutorConfig::enable_prefix_reuse)
      .def_readwrite("seed", &ExecutorConfig::seed)
      .def_readwrite("num_threads", &ExecutorConfig::num_threads)
      .def_readwrite("warm_up", &ExecutorConfig::warm_up);

  pb::class_<Request> req(m, "Request", "kiln::Request (include/kiln/request.h); sampling fields flattened.");
  req.def(pb::init<>())
      .def_readwrite("input_ids", &Request::input_ids)
      .def_readwrite("max_new_tokens", &Request::max_new_tokens)
      .def_readwrite("end_id", &Request::end_id)
      .def_readwrite("pad_id", &Request::pad_id)
      .def_readwrite("stop_sequences", &Request::stop_sequences)
      .def_readwrite("bad_words", &Request::bad_words)
      .def_readwrite("beam_width", &Request::beam_width)
      .def_readwrite("num_return_sequences", &Request::num_return_sequences)
      .def_readwrite("return_log_probs", &Request::return_log_probs)
      .def_readwrite("streaming", &Request::streaming)
      .def_property("early_stopping", [](const Request& r) { return early_stopping_to(r.sampling.early_stopping); },
                    [](Request& r, const pb::object& v) { r.sampling.early_stopping = early_stopping_from(v); });
  sampling_field(req, "temperature", &SamplingParams::temperature);
  sampling_field(req, "top_k", &SamplingParams::top_k);
  sampling_field(req, "top_p", &SamplingParams::top_p);
  sampling_field(req, "min_p", &SamplingParams::min_p);
  sampling_field(req, "repetition_penalty", &SamplingParams::repetition_penalty);
  sampling_field(req, "presence_penalty", &SamplingParams::presence_penalty);
  sampling_field(req, "frequency_penalty", &SamplingParams::frequency_penalty);
  sampling_field(req, "seed", &SamplingParams::seed);
  sampling_field(req, "ignore_eos", &SamplingParams::ignore_eos);
  sampling_field(req, "length_penalty", &SamplingParams::length_penalty);

  pb::class_<Response>(m, "Response", "kiln::Response: one step's new tokens (streaming) or the final result.")
      .def_readonly("request_id", &Response::request_id)
      .def_readonly("is_final", &Response::is_final)
      .def_readonly("error", &Response::error)
      .def_readonly("output_ids", &Response::output_ids)
      .def_readonly("log_probs", &Response::log_probs)
      .def_readonly("scores", &Response::scores)
      .def_property_readonly("finish_reasons", [](const Response& r) {
        std::vector<std::string> names;
        for (FinishReason f : r.finish_reasons) names.push_back(finish_reason_name(f));
        return names;
      });

  pb::class_<PyExecutor>(m, "Executor", "kiln::Executor on an engine folder it loads and owns.")
      .def(pb::init<const std::string&, const ExecutorConfig&>(), pb::arg("engine_dir"), pb::arg("config"))
      .def("check", &PyExecutor::check, pb::arg("request"), "Raises as enqueue would, without queuing.")
      .def("enqueue", &PyExecutor::enqueue, pb::arg("request"))
      .def("cancel", &PyExecutor::cancel, pb::arg("request_id"))
      .def("await_responses", &PyExecutor::await, pb::arg("request_id"), pb::arg("timeout_ms"))
      .def("stats", [](PyExecutor& e) {
        const Stats s = e.stats();
        pb::dict d;
        d["running_requests"] = s.running_requests;
        d["queued_requests"] = s.queued_requests;
        d["kv_blocks_total"] = s.kv_blocks_total;
        d["kv_blocks_used"] = s.kv_blocks_used;
        d["kv_blocks_free"] = s.kv_blocks_free;
        d["kv_blocks_cached"] = s.kv_blocks_cached;
        d["kv_blocks_peak"] = s.kv_blocks_peak;
        d["tokens_per_block"] = s.tokens_per_block;
        d["reused_blocks"] = s.reused_blocks;
        d["preemptions"] = s.preemptions;
        d["copied_blocks"] = s.copied_blocks;
        d["steps"] = s.steps;
        d["last_step_tokens"] = s.last_step_tokens;
        d["total_step_tokens"] = s.total_step_tokens;
        d["mean_tokens_per_step"] = s.mean_tokens_per_step;
        d["completed_requests"] = s.completed_requests;
        return d;
      })
      .def("info", &PyExecutor::info, "The engine's target and limits, and the KV pool's size.")
      .def("close", &PyExecutor::close, "Stops the loop and frees the engine; later calls raise.")
      .def_property_readonly("closed", &PyExecutor::closed);
}

}  // namespace kiln::py
