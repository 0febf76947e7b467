// What the read path needs to know about families, read from Redis and cached: each
// family's live version and each version's layout, key tag and packing. None is trusted for
// ever: Redis may lose its data (the key id counter then starts again at 1, so a cached key
// id may come to name another version's values) and a layout may be rewritten (a new ttl).
// Once a family's entry is `live_cache` old, the next request re-reads the live pointer and
// the key id, packing and layout of every version cached for the family in one MGET (they
// share the {family} hash tag), keeps a version whose records are byte for byte the same,
// rebuilds one whose records changed and forgets one whose records vanished: as the Python
// server does (nbfeatures/serving/records.py).
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
  // Has the family checked by the next request (values read were not its own).
  void Suspect(const std::string& family);

 private:
  // A version's key id, packing and layout records as read (nullopt: absent).
  struct Records {
    std::optional<std::string> key_id, packing, layout;
    bool operator==(const Records& other) const {
      return key_id == other.key_id && packing == other.packing && layout == other.layout;
    }
  };
  struct Cached {
    Records records;
    std::shared_ptr<const Layout> layout;
  };
  struct Family {
    int64_t live = 0;
    std::chrono::steady_clock::time_point checked;
    bool ever_checked = false;
    std::unordered_map<int64_t, Cached> versions;
  };

  // Re-reads the family's live pointer and cached versions' records if they are due.
  void Check(RedisConnection& redis, const std::string& family,
             std::chrono::steady_clock::time_point deadline, Failure& failure,
             std::string& error);
  std::shared_ptr<const Layout> Build(const std::string& family, int64_t version,
                                      const Records& records, bool on_demand) const;

  std::string prefix_;
  std::chrono::milliseconds live_cache_;
  std::mutex mutex_;
  std::unordered_map<std::string, Family> families_;
};

}  // namespace nbf
