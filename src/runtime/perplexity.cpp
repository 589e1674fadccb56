#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "runtime/kv_cache.h"
#include "runtime/model_runner.h"

namespace kiln {

std::vector<RollingWindow> rolling_windows(const std::vector<int32_t>& t, int32_t prefix, int64_t L) {
  if (L < 1) fail("perplexity: a window of {} tokens", L);
  std::vector<RollingWindow> w;
  const int64_t n = int64_t(t.size());
  if (n == 0) return w;
  const int64_t first = std::min(L, n);
  RollingWindow w0;
  w0.input.push_back(prefix);
  w0.input.insert(w0.input.end(), t.begin(), t.begin() + first - 1);
  w0.predicted = first;
  w0.last = t[size_t(first - 1)];
  w.push_back(std::move(w0));
  for (int64_t done = first; done < n;) {
    const int64_t pred = std::min(n - done, L), end = done + pred;
    RollingWindow x;
    x.input.assign(t.begin() + (end - L - 1), t.begin() + (end - 1));
    x.predicted = pred;
    x.last = t[size_t(end - 1)];
    w.push_back(std::move(x));
    done = end;
  }
  return w;
}

double windows_nll(Engine& engine, const std::vector<RollingWindow>& windows,
                   const std::function<void(size_t)>& progress) {
  int64_t longest = 0;
  for (auto& w : windows) longest = std::max<int64_t>(longest, int64_t(w.input.size()));
  if (longest == 0) return 0.0;
  if (longest > engine.limits().max_seq_len)
    fail("a window of {} tokens is longer than the engine's max_seq_len {}", longest, engine.limits().max_seq_len);
  const int64_t tpb = 64, blocks = (longest + tpb - 1) / tpb, V = engine.model().vocab_size;
  ModelRunner runner(engine, allocate_kv_cache(engine.backend(), engine.model(), blocks, tpb,
                                               kv_cache_scales(engine)));
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) table[size_t(b)] = int32_t(b);
  // A window is one step when the engine's token budget holds it, else chunks of the budget (each its logits).
  const int64_t chunk = engine.limits().max_num_tokens;
  double nll = 0;
  std::vector<float> row(static_cast<size_t>(V));
  for (size_t i = 0; i < windows.size(); ++i) {
    const RollingWindow& w = windows[i];
    const int64_t T = int64_t(w.input.size()), first_scored = T - w.predicted;
    for (int64_t c0 = 0; c0 < T; c0 += chunk) {
      const int64_t n = std::min(chunk, T - c0);
      SeqStep s{std::vector<int32_t>(w.input.begin() + c0, w.input.begin() + c0 + n), int32_t(c0), &table, true, true};
      const Tensor logits = runner.step({s});  // [n, V]
      for (int64_t j = std::max(c0, first_scored); j < c0 + n; ++j) {
        engine.backend().download(row.data(), logits.rows(j - c0, 1), size_t(V) * 4);
        const int32_t target = j + 1 < T ? w.input[size_t(j + 1)] : w.last;
        if (target < 0 || target >= V) fail("perplexity: token {} is outside the vocabulary ({})", target, V);
        double mx = -INFINITY;
        for (float v : row) mx = std::max(mx, double(v));
        double z = 0;
        for (float v : row) z += std::exp(double(v) - mx);
        nll -= double(row[size_t(target)]) - mx - std::log(z);
      }
    }
    if (progress) progress(i + 1);
  }
  return nll;
}

}  // namespace kiln
