#include "metrics.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <sstream>

namespace nbf {
namespace {

std::string Number(double value) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.17g", value);
  std::string out(text);
  // Prometheus' Python client writes floats with a decimal point; keep the look alike.
  if (out.find_first_of(".eEn") == std::string::npos) out += ".0";
  return out;
}

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// GET http://host:port/metrics; empty on any failure (the extra lines are best effort).
std::string Fetch(const std::string& host_port) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos) return {};
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host_port.substr(0, colon).c_str(), host_port.substr(colon + 1).c_str(),
                    &hints, &found) != 0) {
    return {};
  }
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string body;
  if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
    std::string ask = "GET /metrics HTTP/1.0\r\nHost: " + host_port + "\r\n\r\n";
    ::send(fd, ask.data(), ask.size(), MSG_NOSIGNAL);
    char chunk[8192];
    ssize_t n;
    while ((n = ::recv(fd, chunk, sizeof(chunk), 0)) > 0) body.append(chunk, n);
  }
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(found);
  auto start = body.find("\r\n\r\n");
  return start == std::string::npos ? std::string() : body.substr(start + 4);
}

}  // namespace

void Histogram::Observe(double seconds) {
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) ++counts_[i];
  }
  ++count_;
  sum_ += seconds;
}

void Histogram::Render(std::string& out, const std::string& name,
                       const std::string& labels) const {
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < kBounds.size(); ++i) {
    out += name + "_bucket{" + labels + sep + "le=\"" + Number(kBounds[i]) + "\"} " +
           Number(static_cast<double>(counts_[i])) + "\n";
  }
  out += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " +
         Number(static_cast<double>(count_)) + "\n";
  out += name + "_count{" + labels + "} " + Number(static_cast<double>(count_)) + "\n";
  out += name + "_sum{" + labels + "} " + Number(sum_) + "\n";
}

void Metrics::Call(const std::string& method, const std::string& code, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  request_seconds_[method].Observe(seconds);
  ++requests_[{method, code}];
}

void Metrics::FamilyRead(const std::string& family, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  family_seconds_[family].Observe(seconds);
}

void Metrics::Values(const std::string& family, const std::array<uint64_t, 5>& counts,
                     size_t width) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t status = 1; status < counts.size(); ++status) {
    if (counts[status]) values_[{family, kStatusNames[status]}] += counts[status] * width;
  }
}

void Metrics::Backend(const std::string& method) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++backend_[method];
}

void Metrics::Staleness(const std::string& family, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  staleness_[family] = seconds;
}

std::string Metrics::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mutex_);
  out += "# HELP nbf_serving_request_seconds Call latency\n";
  out += "# TYPE nbf_serving_request_seconds histogram\n";
  for (const auto& [method, histogram] : request_seconds_) {
    histogram.Render(out, "nbf_serving_request_seconds", "method=\"" + Escape(method) + "\"");
  }
  out += "# HELP nbf_serving_family_read_seconds One family's read latency\n";
  out += "# TYPE nbf_serving_family_read_seconds histogram\n";
  for (const auto& [family, histogram] : family_seconds_) {
    histogram.Render(out, "nbf_serving_family_read_seconds", "family=\"" + Escape(family) + "\"");
  }
  out += "# HELP nbf_serving_requests_total Calls by status code\n";
  out += "# TYPE nbf_serving_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    // Labels in the order the Python client writes them (sorted), so scrapes compare equal.
    out += "nbf_serving_requests_total{code=\"" + key.second + "\",method=\"" +
           Escape(key.first) + "\"} " + Number(static_cast<double>(count)) + "\n";
  }
  out += "# HELP nbf_serving_values_total Values served by status\n";
  out += "# TYPE nbf_serving_values_total counter\n";
  for (const auto& [key, count] : values_) {
    out += "nbf_serving_values_total{family=\"" + Escape(key.first) + "\",status=\"" +
           key.second + "\"} " + Number(static_cast<double>(count)) + "\n";
  }
  out += "# HELP nbf_serving_in_flight Calls being answered now\n";
  out += "# TYPE nbf_serving_in_flight gauge\n";
  out += "nbf_serving_in_flight " + Number(static_cast<double>(in_flight_.load())) + "\n";
  out += "# HELP nbf_serving_redis_errors_total Failed Redis calls\n";
  out += "# TYPE nbf_serving_redis_errors_total counter\n";
  out += "nbf_serving_redis_errors_total " + Number(static_cast<double>(redis_errors_.load())) +
         "\n";
  out += "# HELP nbf_serving_staleness_seconds Age of the newest value served by the last "
         "request\n";
  out += "# TYPE nbf_serving_staleness_seconds gauge\n";
  for (const auto& [family, seconds] : staleness_) {
    out += "nbf_serving_staleness_seconds{family=\"" + Escape(family) + "\"} " +
           Number(seconds) + "\n";
  }
  out += "# HELP nbf_serving_backend_calls_total Calls the native front passed to the Python "
         "server\n";
  out += "# TYPE nbf_serving_backend_calls_total counter\n";
  for (const auto& [method, count] : backend_) {
    out += "nbf_serving_backend_calls_total{method=\"" + Escape(method) + "\"} " +
           Number(static_cast<double>(count)) + "\n";
  }
  return out;
}

int Metrics::Serve(const std::string& host, int port, std::string extra_from) {
  extra_from_ = std::move(extra_from);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return -1;
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || ::bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
    ::freeaddrinfo(found);
    if (fd >= 0) ::close(fd);
    return -1;
  }
  ::freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t size = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &size);
  int bound_port = bound.ss_family == AF_INET6
                       ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                       : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  listener_ = fd;
  http_ = std::thread([this] {
    while (!stopping_.load()) {
      pollfd wait{listener_, POLLIN, 0};
      if (::poll(&wait, 1, 200) <= 0) continue;
      int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      timeval tv{2, 0};
      ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      std::string request;
      char chunk[4096];
      ssize_t n;
      while (request.find("\r\n\r\n") == std::string::npos &&
             (n = ::recv(client, chunk, sizeof(chunk), 0)) > 0) {
        request.append(chunk, n);
      }
      std::string body = Render();
      if (!extra_from_.empty()) {
        // The served-vector log's counters live in the process that writes the log.
        std::istringstream lines(Fetch(extra_from_));
        std::string line;
        while (std::getline(lines, line)) {
          if (line.find("nbf_serving_log_") != std::string::npos &&
              line.find("_created") == std::string::npos) {
            body += line + "\n";
          }
        }
      }
      std::string answer = "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; "
                           "charset=utf-8\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body;
      ::send(client, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(client);
    }
  });
  return bound_port;
}

void Metrics::Stop() {
  stopping_.store(true);
  if (http_.joinable()) http_.join();
  if (listener_ >= 0) ::close(listener_);
  listener_ = -1;
}

}  // namespace nbf
