// SPDX-License-Identifier: MIT
// The r1-inspect program over every malformed case: it must exit with status 1 (not by a signal),
// print a message naming the problem, and finish in under a second. Valid checkpoints, shards,
// index files and configs must exit 0.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "malformed_cases.hpp"

namespace fs = std::filesystem;

extern char** environ;

namespace {

struct Result {
  bool exited = false;  // false: killed by a signal (or by the watchdog)
  int code = -1;
  int signal = 0;
  double seconds = 0;
  std::string output;  // stdout and stderr together
};

// Runs the program `exe` with `args`, capturing its output; kills it after `timeout_s`.
Result run_program(const char* exe, const std::vector<std::string>& args, double timeout_s = 10.0) {
  std::vector<std::string> argv_s = {exe};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  pid_t pid = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  REQUIRE(rc == 0);
  Result r;
  char buf[65536];
  bool killed = false;
  for (;;) {
    const double left = timeout_s - std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (left <= 0 && !killed) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, killed ? 1000 : int(left * 1000) + 1) <= 0) continue;
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    if (r.output.size() < (1u << 20)) r.output.append(buf, std::size_t(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.exited = WIFEXITED(status);
  if (r.exited) r.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

Result run_inspect(const std::vector<std::string>& args) { return run_program(R1_INSPECT_PATH, args); }

/// A malformed input's run: exit code 1 (not a signal), the program's error prefix and the case's
/// expected text in the output, in under a second.
void check_clean_failure(const Result& r, const std::string& prefix, const std::string& expected) {
  INFO("output: ", r.output.substr(0, 2000));
  CHECK_MESSAGE(r.exited, "killed by signal ", r.signal);
  CHECK(r.code == 1);
  CHECK(r.output.find(prefix) != std::string::npos);
  CHECK_MESSAGE(r.output.find(expected) != std::string::npos, "expected \"", expected, "\"");
  CHECK(r.seconds < 1.0);
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "r1-inspect-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("r1-inspect exits 1 with the error for every malformed case, in under a second") {
  TempDir tmp;
  const auto cases = r1::testing::malformed_cases(tmp.path);
  double slowest = 0;
  for (const auto& c : cases) {
    INFO("case ", c.name, " (", c.path.string(), ")");
    const Result r = run_inspect({c.path.string()});
    check_clean_failure(r, "r1-inspect: error: ", c.expected);
    slowest = std::max(slowest, r.seconds);
  }
  MESSAGE(cases.size(), " cases; slowest run ", slowest, " s");
}

TEST_CASE("r1-generate exits 1 with the error for every malformed checkpoint directory, in under a second") {
  TempDir tmp;
  const auto cases = r1::testing::malformed_cases(tmp.path);
  double slowest = 0;
  int dirs = 0;
  for (const auto& c : cases) {
    if (c.kind != r1::testing::Case::Kind::checkpoint && c.kind != r1::testing::Case::Kind::config) continue;
    ++dirs;
    INFO("case ", c.name, " (", c.path.string(), ")");
    const Result r = run_program(R1_GENERATE_PATH, {"--model", c.path.string(), "--prompt-ids", "0,1",
                                                    "--max-new-tokens", "2", "--quiet"});
    check_clean_failure(r, "r1-generate: ", c.expected);
    slowest = std::max(slowest, r.seconds);
  }
  CHECK(dirs >= 60);
  MESSAGE(dirs, " checkpoint directories; slowest run ", slowest, " s");
}

TEST_CASE("r1-inspect accepts the valid fixtures and describes them") {
  const fs::path data = R1_TEST_DATA_DIR;
  {
    const Result r = run_inspect({(data / "tiny-r1-mtp").string()});
    INFO(r.output.substr(0, 3000));
    CHECK(r.exited);
    CHECK(r.code == 0);
    CHECK(r.output.find("valid checkpoint, 2 shards (from model.safetensors.index.json), 404 tensors") !=
          std::string::npos);
    CHECK(r.output.find("4 layers (2 dense, 2 MoE) + 1 MTP") != std::string::npos);
    CHECK(r.output.find("MTP 2,381,456") != std::string::npos);
    CHECK(r.output.find("tensor elements (without *_scale_inv): 9,864,624 (equal to the config's count)") !=
          std::string::npos);
    CHECK(r.output.find("model.layers.4.eh_proj.weight") != std::string::npos);
  }
  {
    const Result r = run_inspect({(data / "tiny-r1-fp8").string(), "--no-tensors"});
    INFO(r.output);
    CHECK(r.code == 0);
    CHECK(r.output.find("1 shard (model*.safetensors)") != std::string::npos);
    CHECK(r.output.find("FP8 e4m3, 128x128 blocks") != std::string::npos);
    CHECK(r.output.find("model.layers.0") == std::string::npos);
  }
  {
    const Result r = run_inspect({(data / "tiny-r1-bf16" / "model.safetensors.index.json").string()});
    CHECK(r.code == 0);
    CHECK(r.output.find("201 tensors") != std::string::npos);
  }
  {
    const Result r = run_inspect({(data / "tiny-r1-bf16" / "reference.safetensors").string()});
    INFO(r.output);
    CHECK(r.code == 0);
    CHECK(r.output.find("metadata: oracle = transformers") != std::string::npos);
    CHECK(r.output.find("generated_ids") != std::string::npos);
  }
  {
    const Result r = run_inspect({(data / "tiny-v3-noqlora" / "config.json").string()});
    INFO(r.output);
    CHECK(r.code == 0);
    CHECK(r.output.find("q_lora none (direct q_proj)") != std::string::npos);
    CHECK(r.output.find("RoPE: YaRN, theta 50000") != std::string::npos);
  }
  const Result help = run_inspect({"--help"});
  CHECK(help.code == 0);
  CHECK(help.output.find("PATH") != std::string::npos);
  const Result usage = run_inspect({});
  CHECK(usage.code == 1);
  const Result extra = run_inspect({"a", "b"});
  CHECK(extra.code == 1);
}
