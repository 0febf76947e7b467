// A blocking Redis connection speaking RESP2: enough for the read path (GET, MGET, HMGET,
// EXISTS, PING) with AUTH and SELECT. One per worker thread, so no locking; a failed or
// abandoned round trip closes it (replies may still be in flight) and the next one reconnects.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nbf {

struct RedisTarget {
  std::string host;         // empty when `unix_path` is set
  int port = 6379;
  std::string unix_path;
  std::string username;
  std::string password;
  int db = 0;
};

struct Reply {
  enum class Type { kNil, kBulk, kInteger, kStatus, kError, kArray };
  Type type = Type::kNil;
  std::string text;  // bulk, status and error replies
  long long integer = 0;
  std::vector<Reply> items;
};

// Why a round trip failed: the connection (or its timeout), the deadline of the call, or the
// server stopping (its grace period over, see StopReadsAt).
enum class Failure { kNone, kConnection, kDeadline, kStopped };

// From `when` on, every read waiting on Redis, in any thread, gives up with kStopped: the
// server's grace period is over. Reads notice within a poll slice (50 ms).
void StopReadsAt(std::chrono::steady_clock::time_point when);

// Appends one command in RESP to `out`.
void AppendCommand(std::string& out, std::initializer_list<std::string_view> parts);
void AppendCommand(std::string& out, const std::vector<std::string_view>& parts);

class RedisConnection {
 public:
  RedisConnection(RedisTarget target, std::chrono::milliseconds timeout);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends `commands` and reads `replies` answers. Reads stop at `deadline` (kDeadline) or
  // after the timeout without a byte (kConnection); either way the connection is closed.
  Failure RoundTrip(const std::string& commands, size_t replies, std::vector<Reply>& out,
                    std::chrono::steady_clock::time_point deadline, std::string& error);

 private:
  bool Connect(std::string& error);
  void Close();
  bool Fill(std::chrono::steady_clock::time_point deadline, Failure& failure, std::string& error);
  bool ParseOne(Reply& reply, std::chrono::steady_clock::time_point deadline, Failure& failure,
                std::string& error);
  bool ReadLine(std::string& line, std::chrono::steady_clock::time_point deadline,
                Failure& failure, std::string& error);

  RedisTarget target_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::string buffer_;
  size_t pos_ = 0;
};

}  // namespace nbf
