#include "redis_conn.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nbf {
namespace {

// A reply's integer; false for anything else (a damaged stream must not throw in a handler).
bool ParseInteger(const std::string& text, long long& out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtoll(text.c_str(), &end, 10);
  return errno == 0 && end == text.c_str() + text.size();
}

void AppendBulk(std::string& out, std::string_view part) {
  out += '$';
  out += std::to_string(part.size());
  out += "\r\n";
  out.append(part.data(), part.size());
  out += "\r\n";
}

template <typename Parts>
void AppendParts(std::string& out, const Parts& parts) {
  out += '*';
  out += std::to_string(parts.size());
  out += "\r\n";
  for (std::string_view part : parts) AppendBulk(out, part);
}

}  // namespace

void AppendCommand(std::string& out, std::initializer_list<std::string_view> parts) {
  AppendParts(out, parts);
}

void AppendCommand(std::string& out, const std::vector<std::string_view>& parts) {
  AppendParts(out, parts);
}

namespace {

// StopReadsAt's time, in steady-clock ticks; max: reads never stop.
std::atomic<std::chrono::steady_clock::rep> stop_reads_at{
    std::chrono::steady_clock::time_point::max().time_since_epoch().count()};
constexpr std::chrono::milliseconds kPollSlice{50};

}  // namespace

void StopReadsAt(std::chrono::steady_clock::time_point when) {
  stop_reads_at.store(when.time_since_epoch().count());
}

RedisConnection::RedisConnection(RedisTarget target, std::chrono::milliseconds timeout)
    : target_(std::move(target)), timeout_(timeout) {}

RedisConnection::~RedisConnection() { Close(); }

void RedisConnection::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
  pos_ = 0;
}

bool RedisConnection::Connect(std::string& error) {
  int fd = -1;
  if (!target_.unix_path.empty()) {
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, target_.unix_path.c_str(), sizeof(address.sun_path) - 1);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      error = "connecting to unix:" + target_.unix_path + ": " + std::strerror(errno);
      if (fd >= 0) ::close(fd);
      return false;
    }
  } else {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    std::string port = std::to_string(target_.port);
    int rc = ::getaddrinfo(target_.host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
      error = "resolving " + target_.host + ": " + gai_strerror(rc);
      return false;
    }
    for (addrinfo* at = found; at != nullptr; at = at->ai_next) {
      fd = ::socket(at->ai_family, at->ai_socktype | SOCK_CLOEXEC, at->ai_protocol);
      if (fd < 0) continue;
      // A connect with the timeout: non-blocking, then poll for writability.
      timeval tv{static_cast<time_t>(timeout_.count() / 1000),
                 static_cast<suseconds_t>((timeout_.count() % 1000) * 1000)};
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      if (::connect(fd, at->ai_addr, at->ai_addrlen) == 0) break;
      error = "connecting to " + target_.host + ":" + port + ": " + std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
    ::freeaddrinfo(found);
    if (fd < 0) return false;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  fd_ = fd;
  std::string hello;
  size_t expected = 0;
  if (!target_.password.empty()) {
    if (target_.username.empty()) {
      AppendCommand(hello, {"AUTH", target_.password});
    } else {
      AppendCommand(hello, {"AUTH", target_.username, target_.password});
    }
    ++expected;
  }
  std::string db = std::to_string(target_.db);
  if (target_.db != 0) {
    AppendCommand(hello, {"SELECT", db});
    ++expected;
  }
  if (expected == 0) return true;
  std::vector<Reply> replies;
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  // RoundTrip would recurse into Connect: write and parse here directly.
  if (::send(fd_, hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size())) {
    error = std::string("sending AUTH/SELECT: ") + std::strerror(errno);
    Close();
    return false;
  }
  Failure failure = Failure::kNone;
  for (size_t i = 0; i < expected; ++i) {
    Reply reply;
    if (!ParseOne(reply, deadline, failure, error)) {
      Close();
      return false;
    }
    if (reply.type == Reply::Type::kError) {
      error = "Redis refused the connection: " + reply.text;
      Close();
      return false;
    }
  }
  return true;
}

Failure RedisConnection::RoundTrip(const std::string& commands, size_t replies,
                                   std::vector<Reply>& out,
                                   std::chrono::steady_clock::time_point deadline,
                                   std::string& error) {
  out.clear();
  if (fd_ < 0 && !Connect(error)) return Failure::kConnection;
  size_t sent = 0;
  while (sent < commands.size()) {
    ssize_t n = ::send(fd_, commands.data() + sent, commands.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = std::string("writing to Redis: ") + std::strerror(errno);
      Close();
      return Failure::kConnection;
    }
    sent += static_cast<size_t>(n);
  }
  out.resize(replies);
  Failure failure = Failure::kNone;
  for (size_t i = 0; i < replies; ++i) {
    if (!ParseOne(out[i], deadline, failure, error)) {
      Close();
      return failure;
    }
  }
  if (pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  }
  return Failure::kNone;
}

bool RedisConnection::Fill(std::chrono::steady_clock::time_point deadline, Failure& failure,
                           std::string& error) {
  if (pos_ > 0 && pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  }
  auto now = std::chrono::steady_clock::now();
  auto timeout_at = now + timeout_;
  bool deadline_first = deadline < timeout_at;
  auto until = deadline_first ? deadline : timeout_at;
  for (;;) {
    auto current = std::chrono::steady_clock::now();
    if (current.time_since_epoch().count() >= stop_reads_at.load()) {
      failure = Failure::kStopped;
      error = "the server stopped";
      return false;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - current);
    if (left.count() <= 0) {
      failure = deadline_first ? Failure::kDeadline : Failure::kConnection;
      error = deadline_first ? "the deadline passed while reading"
                             : "Timeout reading from Redis";
      return false;
    }
    pollfd wait{fd_, POLLIN, 0};
    // In slices, so a stop (StopReadsAt) is noticed while Redis keeps silent.
    int ready = ::poll(&wait, 1, static_cast<int>(std::min(left, kPollSlice).count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;  // the loop above decides which limit passed
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = Failure::kConnection;
      error = n == 0 ? "Connection closed by Redis"
                     : std::string("reading from Redis: ") + std::strerror(errno);
      return false;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }
}

bool RedisConnection::ReadLine(std::string& line, std::chrono::steady_clock::time_point deadline,
                               Failure& failure, std::string& error) {
  for (;;) {
    size_t end = buffer_.find("\r\n", pos_);
    if (end != std::string::npos) {
      line.assign(buffer_, pos_, end - pos_);
      pos_ = end + 2;
      return true;
    }
    if (!Fill(deadline, failure, error)) return false;
  }
}

bool RedisConnection::ParseOne(Reply& reply, std::chrono::steady_clock::time_point deadline,
                               Failure& failure, std::string& error) {
  std::string line;
  if (!ReadLine(line, deadline, failure, error)) return false;
  if (line.empty()) {
    failure = Failure::kConnection;
    error = "an empty reply line from Redis";
    return false;
  }
  char kind = line[0];
  std::string rest = line.substr(1);
  long long number = 0;
  if ((kind == ':' || kind == '$' || kind == '*') && !ParseInteger(rest, number)) {
    failure = Failure::kConnection;
    error = "an unreadable reply from Redis";
    return false;
  }
  switch (kind) {
    case '+':
      reply.type = Reply::Type::kStatus;
      reply.text = std::move(rest);
      return true;
    case '-':
      reply.type = Reply::Type::kError;
      reply.text = std::move(rest);
      return true;
    case ':':
      reply.type = Reply::Type::kInteger;
      reply.integer = number;
      return true;
    case '$': {
      if (number < 0) {
        reply.type = Reply::Type::kNil;
        return true;
      }
      size_t need = static_cast<size_t>(number) + 2;
      while (buffer_.size() - pos_ < need) {
        if (!Fill(deadline, failure, error)) return false;
      }
      reply.type = Reply::Type::kBulk;
      reply.text.assign(buffer_, pos_, static_cast<size_t>(number));
      pos_ += need;
      return true;
    }
    case '*': {
      if (number < 0) {
        reply.type = Reply::Type::kNil;
        return true;
      }
      reply.type = Reply::Type::kArray;
      reply.items.resize(static_cast<size_t>(number));
      for (auto& item : reply.items) {
        if (!ParseOne(item, deadline, failure, error)) return false;
      }
      return true;
    }
    default:
      failure = Failure::kConnection;
      error = "an unreadable reply from Redis";
      return false;
  }
}

}  // namespace nbf
