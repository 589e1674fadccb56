#include "serve/metrics.h"

#include <fmt/format.h>

namespace kiln::serve {

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < bounds.size() && seconds > bounds[i]) ++i;
  ++counts[i];
  sum += seconds;
  ++count;
}

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, const std::string& labels,
            double value) {
  out += fmt::format("# HELP kiln:{} {}\n# TYPE kiln:{} {}\nkiln:{}{{{}}} {}\n", name, help, name, type, name, labels,
                     value);
}

void histogram(std::string& out, const char* name, const char* help, const std::string& labels, const Histogram& h) {
  out += fmt::format("# HELP kiln:{} {}\n# TYPE kiln:{} histogram\n", name, help, name);
  uint64_t cum = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cum += h.counts[i];
    out += fmt::format("kiln:{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, h.bounds[i], cum);
  }
  cum += h.counts.back();
  out += fmt::format("kiln:{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, cum);
  out += fmt::format("kiln:{}_sum{{{}}} {}\nkiln:{}_count{{{}}} {}\n", name, labels, h.sum, name, labels, h.count);
}

}  // namespace

std::string render_metrics(const Metrics& m, const Stats& s, const std::string& model_name) {
  const std::string l = fmt::format("model_name=\"{}\"", model_name);
  std::string out;
  metric(out, "num_requests_running", "gauge", "Requests admitted and holding KV blocks.", l,
         double(s.running_requests));
  metric(out, "num_requests_waiting", "gauge", "Requests waiting for admission.", l, double(s.queued_requests));
  metric(out, "kv_cache_usage_perc", "gauge", "Fraction of KV blocks in use (1 = all).", l,
         s.kv_blocks_total ? double(s.kv_blocks_used) / double(s.kv_blocks_total) : 0.0);
  metric(out, "kv_blocks_used", "gauge", "KV blocks referenced by a running sequence.", l, double(s.kv_blocks_used));
  metric(out, "kv_blocks_total", "gauge", "KV blocks in the pool.", l, double(s.kv_blocks_total));
  metric(out, "prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.", l,
         double(m.prefix_cache_queries));
  metric(out, "prefix_cache_hits_total", "counter", "Prompt tokens served from the prefix cache.", l,
         double(s.reused_blocks * s.tokens_per_block));
  metric(out, "num_preemptions_total", "counter", "Requests preempted (KV dropped, recomputed later).", l,
         double(s.preemptions));
  metric(out, "prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", l, double(m.prompt_tokens));
  metric(out, "generation_tokens_total", "counter", "Tokens generated.", l, double(m.generation_tokens));
  out +=
      "# HELP kiln:request_success_total Finished requests by finish reason.\n"
      "# TYPE kiln:request_success_total counter\n";
  for (const char* reason : {"stop", "length", "abort", "error"}) {
    auto it = m.success_by_reason.find(reason);
    out += fmt::format("kiln:request_success_total{{{},finished_reason=\"{}\"}} {}\n", l, reason,
                       it == m.success_by_reason.end() ? 0 : it->second);
  }
  metric(out, "http_requests_total", "counter", "HTTP requests received.", l, double(m.http_requests));
  metric(out, "http_errors_total", "counter", "HTTP requests answered with an error status.", l, double(m.http_errors));
  metric(out, "open_connections", "gauge", "Open client connections.", l, double(m.open_connections));
  histogram(out, "time_to_first_token_seconds", "Time from the request to its first token.", l, m.ttft);
  histogram(out, "inter_token_latency_seconds", "Time between a choice's consecutive tokens.", l, m.itl);
  histogram(out, "e2e_request_latency_seconds", "Time from the request to its last token.", l, m.e2e);
  return out;
}

}  // namespace kiln::serve
