// nbf-serve-native: the native data plane of `nbfeatures serve` (data_plane: native).
// Started by the Python command, which runs the full Python server on a private unix socket
// (the backend) and passes everything else as flags; the bearer token comes in the
// environment (NBF_NATIVE_TOKEN) so it never shows in a process listing. Prints
// "ready <port> <metrics port>" on stdout once serving; SIGTERM or SIGINT stops it gracefully.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "feature_service.h"

namespace {

constexpr const char* kServiceName = "nbfeatures.serving.v1.FeatureService";
// After the grace period, the time calls cut off by it get to send their status.
constexpr std::chrono::milliseconds kAnswerTime{1000};

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    std::cerr << "nbf-serve-native: cannot read " << path << "\n";
    std::exit(2);
  }
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::map<std::string, std::string> ParseFlags(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      std::cerr << "nbf-serve-native: flags are --name=value, got " << arg << "\n";
      std::exit(2);
    }
    flags[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
  }
  return flags;
}

std::string Flag(const std::map<std::string, std::string>& flags, const std::string& name,
                 const std::string& fallback = "") {
  auto found = flags.find(name);
  return found == flags.end() ? fallback : found->second;
}

std::chrono::milliseconds Millis(const std::string& seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::stod(seconds) * 1000));
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = ParseFlags(argc, argv);
  // Signals are taken by sigwait below, not by whichever thread they land on.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  nbf::ServiceOptions options;
  options.prefix = Flag(flags, "prefix", "nbf:");
  options.redis.host = Flag(flags, "redis-host");
  options.redis.port = std::stoi(Flag(flags, "redis-port", "6379"));
  options.redis.unix_path = Flag(flags, "redis-unix");
  options.redis.username = Flag(flags, "redis-username");
  options.redis.db = std::stoi(Flag(flags, "redis-db", "0"));
  if (const char* password = std::getenv("NBF_NATIVE_REDIS_PASSWORD")) {
    options.redis.password = password;
  }
  if (const char* token = std::getenv("NBF_NATIVE_TOKEN")) options.token = token;
  options.redis_timeout = Millis(Flag(flags, "redis-timeout", "2"));
  options.live_cache = Millis(Flag(flags, "live-cache", "0.5"));
  options.max_entities = std::stoll(Flag(flags, "max-entities", "1000"));
  options.max_features = std::stoll(Flag(flags, "max-features", "200"));
  options.max_request_bytes = std::stoll(Flag(flags, "max-request-bytes", "4194304"));
  options.log_sample_rate = std::stod(Flag(flags, "log-sample-rate", "0"));
  auto health_interval = Millis(Flag(flags, "health-interval", "0.5"));
  double grace_seconds = std::stod(Flag(flags, "grace", "10"));
  auto grace = Millis(Flag(flags, "grace", "10"));
  std::string listen = Flag(flags, "listen", "127.0.0.1:6566");
  std::string backend_address = Flag(flags, "backend");
  if (backend_address.empty()) {
    std::cerr << "nbf-serve-native: --backend=unix:PATH is required\n";
    return 2;
  }

  nbf::Metrics metrics;
  int metrics_port = 0;
  std::string metrics_listen = Flag(flags, "metrics");
  if (!metrics_listen.empty()) {
    auto colon = metrics_listen.rfind(':');
    metrics_port = metrics.Serve(metrics_listen.substr(0, colon),
                                 std::stoi(metrics_listen.substr(colon + 1)),
                                 Flag(flags, "backend-metrics"));
    if (metrics_port < 0) {
      std::cerr << "nbf-serve-native: cannot listen for metrics on " << metrics_listen << "\n";
      return 2;
    }
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ChannelArguments backend_args;
  backend_args.SetMaxReceiveMessageSize(-1);
  backend_args.SetMaxSendMessageSize(-1);
  auto backend = grpc::CreateCustomChannel(backend_address, grpc::InsecureChannelCredentials(),
                                           backend_args);

  std::unique_ptr<grpc::Server> server;
  std::mutex health_mutex;
  auto set_health = [&](bool serving) {
    std::lock_guard<std::mutex> lock(health_mutex);
    if (!server) return;
    auto* health = server->GetHealthCheckService();
    health->SetServingStatus("", serving);
    health->SetServingStatus(kServiceName, serving);
  };
  nbf::FeatureServiceImpl service(options, backend, metrics, set_health);

  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  std::string tls_cert = Flag(flags, "tls-cert");
  if (!tls_cert.empty()) {
    grpc::SslServerCredentialsOptions tls;
    tls.pem_key_cert_pairs.push_back({ReadFile(Flag(flags, "tls-key")), ReadFile(tls_cert)});
    std::string client_ca = Flag(flags, "tls-client-ca");
    if (!client_ca.empty()) {
      tls.pem_root_certs = ReadFile(client_ca);
      tls.client_certificate_request =
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(tls);
  }
  int port = 0;
  builder.AddListeningPort(listen, credentials, &port);
  // gRPC's own cap sits above ours so an oversized request reaches the backend's clear error.
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<int64_t>(options.max_request_bytes * 2 + 1024 * 1024, INT32_MAX)));
  builder.RegisterService(&service);
  {
    std::lock_guard<std::mutex> lock(health_mutex);
    server = builder.BuildAndStart();
  }
  if (!server || port == 0) {
    std::cerr << "nbf-serve-native: cannot listen on " << listen << "\n";
    return 2;
  }

  // Health follows Redis: pinged on an interval, so recovery needs no restart.
  std::atomic<bool> stopping{false};
  std::mutex wait_mutex;
  std::condition_variable wake;
  std::thread watcher([&] {
    nbf::RedisConnection redis(options.redis, options.redis_timeout);
    std::string ping;
    nbf::AppendCommand(ping, {"PING"});
    while (!stopping.load()) {
      std::vector<nbf::Reply> replies;
      std::string error;
      auto failure = redis.RoundTrip(ping, 1, replies, std::chrono::steady_clock::time_point::max(),
                                     error);
      bool serving = failure == nbf::Failure::kNone &&
                     replies[0].type == nbf::Reply::Type::kStatus;
      if (!serving) metrics.RedisError();
      if (stopping.load()) break;
      set_health(serving);
      std::unique_lock<std::mutex> lock(wait_mutex);
      wake.wait_for(lock, health_interval, [&] { return stopping.load(); });
    }
  });

  std::cout << "ready " << port << " " << metrics_port << std::endl;

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  // The watcher is told to stop but not waited for: its PING may hang with Redis, and new
  // calls must be refused at once.
  {
    std::lock_guard<std::mutex> lock(wait_mutex);
    stopping.store(true);
  }
  wake.notify_all();
  {
    std::lock_guard<std::mutex> lock(health_mutex);
    server->GetHealthCheckService()->Shutdown();  // NOT_SERVING from now on
  }
  // gRPC's core cancels, when the server shuts down, the calls it has received but not yet
  // handed to a handler thread (a burst, a busy moment): wait until no call has arrived for
  // 50 ms, at most a second, so those are answered too.
  {
    auto ends = std::chrono::steady_clock::now() + std::min<std::chrono::milliseconds>(
                                                         std::chrono::milliseconds(1000), grace / 2);
    uint64_t seen = service.Arrivals();
    for (int quiet = 0; quiet < 10 && std::chrono::steady_clock::now() < ends;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      uint64_t now_seen = service.Arrivals();
      quiet = now_seen == seen ? quiet + 1 : 0;
      seen = now_seen;
    }
  }
  std::cerr << "no new calls accepted" << std::endl;
  // New calls are refused at once; calls in flight get the grace period to finish. When it
  // ends, the calls still waiting (on Redis or on the backend) are answered UNAVAILABLE
  // saying so, and gRPC cancels whatever remains a moment later.
  std::mutex done_mutex;
  std::condition_variable done_changed;
  bool done = false;
  std::thread grace_timer([&] {
    std::unique_lock<std::mutex> lock(done_mutex);
    if (!done_changed.wait_for(lock, grace, [&] { return done; })) {
      service.GraceOver(grace_seconds);
    }
  });
  server->Shutdown(std::chrono::system_clock::now() + grace + kAnswerTime);
  server->Wait();
  {
    std::lock_guard<std::mutex> lock(done_mutex);
    done = true;
  }
  done_changed.notify_all();
  grace_timer.join();
  nbf::StopReadsAt(std::chrono::steady_clock::now());  // a PING of the watcher's, if it hangs
  watcher.join();
  metrics.Stop();
  return 0;
}
