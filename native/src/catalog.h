// What the read path needs to know about families, read from Redis and cached: each
// family's live version (trusted for `live_cache` like the Python server's) and each
// version's layout, key tag and packing (never changed once written, so kept).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "layout.h"
#include "redis_conn.h"

namespace nbf {

class Catalog {
 public:
  Catalog(std::string prefix, std::chrono::milliseconds live_cache)
      : prefix_(std::move(prefix)), live_cache_(live_cache) {}

  // The live version (0: none). `failure` set when Redis could not be read.
  int64_t Live(RedisConnection& redis, const std::string& family,
               std::chrono::steady_clock::time_point deadline, Failure& failure,
               std::string& error);
  // The version's layout with its tag and packing; nullptr when the store does not hold
  // all of them (or they cannot be read): the caller leaves such requests to the Python path.
  std::shared_ptr<const Layout> Version(RedisConnection& redis, const std::string& family,
                                        int64_t version,
                                        std::chrono::steady_clock::time_point deadline,
                                        Failure& failure, std::string& error);

 private:
  std::string prefix_;
  std::chrono::milliseconds live_cache_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::pair<int64_t, std::chrono::steady_clock::time_point>>
      live_;
  std::unordered_map<std::string, std::shared_ptr<const Layout>> versions_;
};

}  // namespace nbf
