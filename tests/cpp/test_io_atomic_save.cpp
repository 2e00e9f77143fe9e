// Saving checkpoints safely: concurrent writers (threads and processes) to one path each replace the file
// whole, so every load sees exactly one writer's complete content; a failed save raises naming the path,
// keeps the old file and leaves no temporary file; a writer killed mid-save never costs the old file.
#include <dirent.h>
#include <gtest/gtest.h>
#include <needle/io/safetensors.h>
#include <needle/needle.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/json_quote.h"
#include "file_test_util.h"
#include "io/atomic_file.h"

namespace needle {
namespace {

using testing::TempDir;

constexpr int kRounds = 20;

// What writer `writer` saves in round `round`: names, shapes and dtypes differ between the two writers
// and every value encodes (writer, round), so a file mixing two saves cannot pass check_whole(). Built
// from host vectors, without kernels, so that forked children never touch the parent's thread pool.
io::TensorMap state_of(int writer, int round) {
  const auto v = static_cast<std::int64_t>(writer * 1000 + round);
  io::TensorMap state;
  state.emplace("id", NDArray::from_vector(std::vector<std::int64_t>{writer, round}, {2}));
  if (writer == 0) {
    state.emplace("common", NDArray::from_vector(std::vector<float>(20000, static_cast<float>(v)), {20000}));
    state.emplace("only_a", NDArray::from_vector(std::vector<double>(21, static_cast<double>(v)), {7, 3}));
  } else {
    state.emplace("common", NDArray::from_vector(std::vector<std::int64_t>(15000, v), {5000, 3}));
    state.emplace("only_b", NDArray::from_vector(std::vector<std::int32_t>(11, static_cast<std::int32_t>(v)), {11}));
  }
  return state;
}

// True when `loaded` is exactly what state_of() gives for the writer and round its "id" names.
bool is_whole(const io::TensorMap& loaded) {
  const auto id = loaded.find("id");
  if (id == loaded.end() || id->second.dtype() != DType::Int64 || id->second.shape() != Shape{2}) return false;
  const std::vector<std::int64_t> who = id->second.to_vector<std::int64_t>();
  if ((who[0] != 0 && who[0] != 1) || who[1] < 0 || who[1] >= kRounds) return false;
  const io::TensorMap expected = state_of(static_cast<int>(who[0]), static_cast<int>(who[1]));
  if (loaded.size() != expected.size()) return false;
  for (const auto& [name, array] : expected) {
    const auto found = loaded.find(name);
    if (found == loaded.end() || found->second.shape() != array.shape() || found->second.dtype() != array.dtype()) {
      return false;
    }
    const NDArray& got = found->second;
    if (got.astype(DType::Float64).to_vector<double>() != array.astype(DType::Float64).to_vector<double>()) {
      return false;
    }
  }
  return true;
}

// The names in `folder` other than `keep`: temporary files a save left behind.
std::vector<std::string> other_entries(const std::string& folder, const std::string& keep) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (name != keep) names.push_back(name);
  }
  return names;
}

// Loads `path` until `done` says stop, counting loads that are not one writer's whole content.
void read_until(const std::string& path, const std::atomic<bool>& done, int& loads, int& torn) {
  while (!done.load()) {
    try {
      if (!is_whole(io::load_safetensors(path))) ++torn;
    } catch (const Error&) {
      ++torn;
    }
    ++loads;
  }
}

TEST(AtomicSaveTest, TwoThreadsSavingToOnePathLeaveOneWholeFile) {
  const TempDir dir;
  const std::string path = dir.file("shared.safetensors");
  io::save_safetensors(path, state_of(0, 0));
  std::atomic<int> failures{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int writer = 0; writer < 2; ++writer) {
    writers.emplace_back([&, writer] {
      for (int round = 0; round < kRounds; ++round) {
        try {
          io::save_safetensors(path, state_of(writer, round));
        } catch (const Error&) {
          ++failures;
        }
      }
    });
  }
  int loads = 0;
  int torn = 0;
  std::thread reader([&] { read_until(path, done, loads, torn); });
  for (std::thread& writer : writers) writer.join();
  done = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(torn, 0) << "of " << loads << " loads during the saves";
  EXPECT_TRUE(is_whole(io::load_safetensors(path)));
  EXPECT_EQ(other_entries(dir.path(), "shared.safetensors"), std::vector<std::string>{});
}

TEST(AtomicSaveTest, TwoProcessesSavingToOnePathLeaveOneWholeFile) {
  const TempDir dir;
  const std::string path = dir.file("shared.safetensors");
  io::save_safetensors(path, state_of(1, 0));
  std::vector<pid_t> children;
  for (int writer = 0; writer < 2; ++writer) {
    // Each child's states are built before the fork, so a child only writes files.
    std::vector<io::TensorMap> states;
    for (int round = 0; round < kRounds; ++round) states.push_back(state_of(writer, round));
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int status = 0;
      for (const io::TensorMap& state : states) {
        try {
          io::save_safetensors(path, state);
        } catch (...) {
          status = 1;
        }
      }
      _exit(status);
    }
    children.push_back(pid);
  }
  // Loads while the children save; stops once both have exited.
  int loads = 0;
  int torn = 0;
  std::vector<int> statuses;
  while (statuses.size() < children.size()) {
    try {
      if (!is_whole(io::load_safetensors(path))) ++torn;
    } catch (const Error&) {
      ++torn;
    }
    ++loads;
    int status = 0;
    const pid_t finished = waitpid(-1, &status, WNOHANG);
    if (finished > 0) statuses.push_back(status);
  }
  for (const int status : statuses) {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a child's save failed: status " << status;
  }
  EXPECT_EQ(torn, 0) << "of " << loads << " loads during the saves";
  EXPECT_TRUE(is_whole(io::load_safetensors(path)));
  EXPECT_EQ(other_entries(dir.path(), "shared.safetensors"), std::vector<std::string>{});
}

// Expects save_safetensors(path) to raise RuntimeError naming `path` and containing `fragment`.
void expect_save_fails(const std::string& path, const std::string& fragment) {
  try {
    io::save_safetensors(path, state_of(0, 1));
    ADD_FAILURE() << "saving to " << path << " succeeded";
  } catch (const RuntimeError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(json_quote(path)), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

TEST(AtomicSaveTest, AFailedSaveNamesThePathAndLeavesNoTemporaryFile) {
  const TempDir dir;
  // A path that is a folder: the temporary file is written, the rename refuses, the file is removed.
  const std::string folder = dir.file("a_folder");
  std::filesystem::create_directories(folder);
  testing::write_bytes(folder + "/inside", "kept");
  expect_save_fails(folder, "cannot replace it");
  EXPECT_EQ(testing::read_bytes(folder + "/inside"), "kept");
  EXPECT_EQ(other_entries(dir.path(), "a_folder"), std::vector<std::string>{});
  // A folder that does not exist, and a "folder" that is a file.
  expect_save_fails(dir.file("missing/x.safetensors"), "cannot open for writing");
  testing::write_bytes(dir.file("plain"), "x");
  expect_save_fails(dir.file("plain/x.safetensors"), "cannot open for writing");
  EXPECT_EQ(other_entries(dir.path(), "a_folder"), std::vector<std::string>{"plain"});
}

TEST(AtomicSaveTest, AFolderWithoutWritePermissionKeepsItsCheckpoint) {
  const TempDir dir;
  const std::string folder = dir.file("locked");
  std::filesystem::create_directories(folder);
  const std::string path = folder + "/model.safetensors";
  io::save_safetensors(path, state_of(1, 3));
  ASSERT_EQ(chmod(folder.c_str(), 0555), 0);
  const bool writable = access(folder.c_str(), W_OK) == 0;  // root writes anywhere
  if (!writable) expect_save_fails(path, "Permission denied");
  ASSERT_EQ(chmod(folder.c_str(), 0755), 0);
  if (writable) GTEST_SKIP() << "running as a user who may write to a read-only folder";
  EXPECT_TRUE(is_whole(io::load_safetensors(path)));
  EXPECT_EQ(io::load_safetensors(path).at("id").to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(other_entries(folder, "model.safetensors"), std::vector<std::string>{});
}

// A write that fails half way (here a file size limit, as a full disk would) keeps the old checkpoint.
// Run in a child process so the limit does not outlive the test.
TEST(AtomicSaveTest, AWriteFailingHalfWayKeepsTheOldFile) {
  const TempDir dir;
  const std::string path = dir.file("model.safetensors");
  io::save_safetensors(path, state_of(1, 4));
  const io::TensorMap big = state_of(0, 5);  // about 80 KB
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);  // a write past the limit then fails with EFBIG instead of killing us
    const rlimit limit{16384, 16384};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(2);
    try {
      io::save_safetensors(path, big);
      _exit(3);  // the save should not have fit
    } catch (const RuntimeError& e) {
      const std::string message = e.what();
      if (message.find(json_quote(path)) == std::string::npos || message.find("writing") == std::string::npos) {
        _exit(4);
      }
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: setrlimit failed, 3: the save succeeded, 4: wrong message";
  const io::TensorMap loaded = io::load_safetensors(path);
  EXPECT_TRUE(is_whole(loaded));
  EXPECT_EQ(loaded.at("id").to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 4}));
  EXPECT_EQ(other_entries(dir.path(), "model.safetensors"), std::vector<std::string>{});
}

// SIGKILL at any moment of a save leaves the path holding one complete save (the old or the new one);
// only the killed writer's temporary file may remain, and it does not disturb the next save or load.
TEST(AtomicSaveTest, AWriterKilledMidSaveNeverLosesTheCheckpoint) {
  const TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::vector<io::TensorMap> states = {state_of(0, 6), state_of(1, 7)};
  io::save_safetensors(path, states[0]);
  for (int kill_after_us : {0, 300, 1000, 2000, 3500, 5000, 8000, 13000}) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (std::size_t i = 0;; ++i) {
        try {
          io::save_safetensors(path, states[i % 2]);
        } catch (...) {
          _exit(1);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(kill_after_us));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status)) << "the saving child exited by itself: status " << status;
    EXPECT_TRUE(is_whole(io::load_safetensors(path))) << "killed after " << kill_after_us << " us";
  }
  for (const std::string& name : other_entries(dir.path(), "model.safetensors")) {
    EXPECT_EQ(name.rfind("model.safetensors.", 0), 0U) << name;  // a temporary file of ours, nothing else
    EXPECT_EQ(name.substr(name.size() - 4), ".tmp") << name;
  }
  io::save_safetensors(path, states[1]);
  EXPECT_EQ(io::load_safetensors(path).at("id").to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 7}));
}

TEST(AtomicSaveTest, NewFilesGetTheUsualPermissionsAndRelativePathsWork) {
  const TempDir dir;
  const mode_t old_mask = umask(022);
  io::save_safetensors(dir.file("m.safetensors"), state_of(0, 8));
  umask(old_mask);
  struct stat info {};
  ASSERT_EQ(stat(dir.file("m.safetensors").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777U, 0644U);  // what a plain new file gets, not a temporary file's 0600
  // A bare file name: the folder flushed after the rename is the current one.
  const std::filesystem::path previous = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  io::save_safetensors("relative.safetensors", state_of(1, 9));
  std::filesystem::current_path(previous);
  EXPECT_TRUE(is_whole(io::load_safetensors(dir.file("relative.safetensors"))));
}

// The writer on its own: nothing reaches the target before commit(), and an abandoned writer removes
// its temporary file.
TEST(AtomicSaveTest, TheTargetChangesOnlyAtCommit) {
  const TempDir dir;
  const std::string path = dir.file("f.bin");
  testing::write_bytes(path, "old");
  std::string temporary;
  {
    io::AtomicFileWriter writer(path, "test");
    temporary = writer.temporary_path();
    EXPECT_EQ(temporary.rfind(path + ".", 0), 0U) << temporary;
    writer.write("new", 3);
    EXPECT_EQ(testing::read_bytes(path), "old");
    EXPECT_TRUE(std::filesystem::exists(temporary));
  }
  EXPECT_FALSE(std::filesystem::exists(temporary));
  EXPECT_EQ(testing::read_bytes(path), "old");
  io::AtomicFileWriter writer(path, "test");
  writer.write("new", 3);
  writer.commit();
  EXPECT_EQ(testing::read_bytes(path), "new");
  EXPECT_EQ(other_entries(dir.path(), "f.bin"), std::vector<std::string>{});
}

}  // namespace
}  // namespace needle
