// The server's Prometheus metrics, with the names and labels of nbfeatures.serving.metrics,
// rendered in the text exposition format on an HTTP port of their own.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace nbf {

class Histogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                     0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
  void Observe(double seconds);
  void Render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::array<uint64_t, kBounds.size()> counts_{};
  uint64_t count_ = 0;
  double sum_ = 0.0;
};

// Status numbers as on the wire: PRESENT=1 .. ERROR=4.
constexpr std::array<const char*, 5> kStatusNames = {"", "PRESENT", "NOT_FOUND", "STALE",
                                                     "ERROR"};

class Metrics {
 public:
  void Call(const std::string& method, const std::string& code, double seconds);
  void FamilyRead(const std::string& family, double seconds);
  // `counts` indexed by status number; `width` features per row.
  void Values(const std::string& family, const std::array<uint64_t, 5>& counts, size_t width);
  void Staleness(const std::string& family, double seconds);
  // A call the native front passed to the Python backend.
  void Backend(const std::string& method);
  void RedisError() { redis_errors_.fetch_add(1, std::memory_order_relaxed); }
  std::atomic<int64_t>& in_flight() { return in_flight_; }

  std::string Render() const;

  // Serves Render() (plus the lines of `extra`, fetched from another endpoint, if set) at
  // host:port; returns the bound port, or -1.
  int Serve(const std::string& host, int port, std::string extra_from);
  void Stop();

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Histogram> request_seconds_;
  std::map<std::string, Histogram> family_seconds_;
  std::map<std::pair<std::string, std::string>, uint64_t> requests_;
  std::map<std::pair<std::string, std::string>, uint64_t> values_;
  std::map<std::string, double> staleness_;
  std::map<std::string, uint64_t> backend_;
  std::atomic<uint64_t> redis_errors_{0};
  std::atomic<int64_t> in_flight_{0};
  std::string extra_from_;
  int listener_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread http_;
};

}  // namespace nbf
