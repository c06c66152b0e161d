#include <coronet/ws/attachment_store.hpp>

#include <coronet/core/offload.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

namespace coronet::ws {
namespace {

std::error_code last_error() noexcept {
    return {errno, std::system_category()};
}

class unique_fd {
public:
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset() noexcept {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_;
};

// ---- names -------------------------------------------------------------------------------

constexpr std::size_t id_digits = 16;
constexpr std::string_view tmp_suffix = ".tmp";

std::string file_name(std::uint64_t id) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string s(id_digits, '0');
    for (std::size_t i = id_digits; i-- > 0; id >>= 4)
        s[i] = hex[id & 0xf];
    return s;
}

bool is_lower_hex(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}
bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

/// The id an attachment file is named after: exactly 16 lowercase hex digits, nothing else.
std::optional<std::uint64_t> parse_file_name(std::string_view name) noexcept {
    if (name.size() != id_digits)
        return std::nullopt;
    std::uint64_t id = 0;
    for (char c : name) {
        if (!is_lower_hex(c))
            return std::nullopt;
        id = (id << 4) | static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return id;
}

/// True for the temporary names `put` creates: `<16 hex>.<digits>-<digits>.tmp`.
bool is_tmp_name(std::string_view name) noexcept {
    if (name.size() <= id_digits + 1 + tmp_suffix.size() || !name.ends_with(tmp_suffix))
        return false;
    if (!parse_file_name(name.substr(0, id_digits)) || name[id_digits] != '.')
        return false;
    std::string_view serial = name.substr(id_digits + 1);
    serial.remove_suffix(tmp_suffix.size());
    const auto dash = serial.find('-');
    if (dash == std::string_view::npos || dash == 0 || dash + 1 == serial.size())
        return false;
    const auto pid = serial.substr(0, dash);
    const auto n = serial.substr(dash + 1);
    return std::all_of(pid.begin(), pid.end(), is_digit) &&
           std::all_of(n.begin(), n.end(), is_digit);
}

std::error_code write_all(int fd, std::span<const std::byte> data) noexcept {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return last_error();
        }
        data = data.subspan(static_cast<std::size_t>(n));
    }
    return {};
}

// ---- the stores ----------------------------------------------------------------------------

class memory_store final : public attachment_store {
public:
    core::task<core::result<void>> put(std::uint64_t id, std::vector<std::byte> data) override {
        items_.insert_or_assign(id, std::move(data));
        co_return core::result<void>{};
    }

    core::task<core::result<std::optional<std::vector<std::byte>>>> get(std::uint64_t id) override {
        std::optional<std::vector<std::byte>> out;
        if (auto it = items_.find(id); it != items_.end())
            out = it->second;
        co_return out;
    }

    core::task<core::result<void>> remove(std::uint64_t id) override {
        items_.erase(id);
        co_return core::result<void>{};
    }

    core::task<core::result<std::vector<std::uint64_t>>> list() override {
        std::vector<std::uint64_t> ids;
        ids.reserve(items_.size());
        for (const auto& [id, data] : items_)
            ids.push_back(id);
        std::sort(ids.begin(), ids.end());
        co_return ids;
    }

private:
    std::unordered_map<std::uint64_t, std::vector<std::byte>> items_;
};

// File I/O runs on the offload pool through the store's own queue, so the calls apply in the
// order they were made, one at a time (which also lets `list` delete stale temporary files
// without racing a `put`). The calls are not cancellable (stop_token()): a caller always learns
// whether its write took effect. Each call names its awaitable: g++ 12 destroys a temporary
// awaitable of a co_await expression twice when it owns a lambda with non-trivial captures.
class directory_store final : public attachment_store {
public:
    directory_store(std::string dir, directory_store_options opts)
        : opts_(std::move(opts)), dir_fd_(open_locked(dir)) {}

    directory_store(const directory_store&) = delete;
    directory_store& operator=(const directory_store&) = delete;

    core::task<core::result<void>> put(std::uint64_t id, std::vector<std::byte> data) override {
        auto call = core::offload(queue_, core::stop_token(), [this, id, data = std::move(data)] {
            return write_file(id, data);
        });
        co_return co_await call;
    }

    core::task<core::result<std::optional<std::vector<std::byte>>>> get(std::uint64_t id) override {
        auto call = core::offload(queue_, core::stop_token(), [this, id] { return read_file(id); });
        co_return co_await call;
    }

    core::task<core::result<void>> remove(std::uint64_t id) override {
        auto call =
            core::offload(queue_, core::stop_token(), [this, id] { return remove_file(id); });
        co_return co_await call;
    }

    core::task<core::result<std::vector<std::uint64_t>>> list() override {
        auto call = core::offload(queue_, core::stop_token(), [this] { return list_files(); });
        co_return co_await call;
    }

private:
    static unique_fd open_locked(const std::string& dir) {
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
            const auto ec = last_error();
            throw std::system_error(ec, "attachment store: mkdir " + dir);
        }
        unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd) {
            const auto ec = last_error();
            throw std::system_error(ec, "attachment store: open " + dir);
        }
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
            const auto ec = last_error();
            throw std::system_error(ec, "attachment store: " + dir + " is in use by another store");
        }
        return fd;
    }

    std::error_code fault(write_stage stage, std::uint64_t id) const {
        return opts_.fault_hook ? opts_.fault_hook(stage, id) : std::error_code{};
    }

    core::result<void> write_file(std::uint64_t id, std::span<const std::byte> data) {
        const std::string name = file_name(id);
        const std::string tmp = name + "." + std::to_string(::getpid()) + "-" +
                                std::to_string(++tmp_serial_) + std::string(tmp_suffix);
        unique_fd fd(::openat(dir_fd_.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                              static_cast<mode_t>(opts_.file_mode)));
        if (!fd)
            return last_error();
        // A failed step leaves nothing behind; an exception from the hook stands for a crash
        // and deliberately leaves the temporary file for `list` to clean.
        auto fail = [&](std::error_code ec) {
            fd.reset();
            ::unlinkat(dir_fd_.get(), tmp.c_str(), 0);
            return ec;
        };
        std::error_code ec = fault(write_stage::tmp_created, id);
        if (ec)
            return fail(ec);
        const std::size_t half = data.size() / 2;
        if ((ec = write_all(fd.get(), data.first(half))))
            return fail(ec);
        if ((ec = fault(write_stage::half_written, id)))
            return fail(ec);
        if ((ec = write_all(fd.get(), data.subspan(half))))
            return fail(ec);
        if ((ec = fault(write_stage::written, id)))
            return fail(ec);
        // Without this fsync the rename could reach the disk before the data, and a crash
        // would expose an empty or partial file under the final name.
        if (::fsync(fd.get()) != 0)
            return fail(last_error());
        if (::close(fd.release()) != 0)
            return fail(last_error());
        if ((ec = fault(write_stage::synced, id)))
            return fail(ec);
        if (::renameat(dir_fd_.get(), tmp.c_str(), dir_fd_.get(), name.c_str()) != 0)
            return fail(last_error());
        if ((ec = fault(write_stage::renamed, id)))
            return ec;
        // The rename itself is only durable once the directory is.
        if (::fsync(dir_fd_.get()) != 0)
            return last_error();
        return {};
    }

    core::result<std::optional<std::vector<std::byte>>> read_file(std::uint64_t id) const {
        const std::string name = file_name(id);
        unique_fd fd(::openat(dir_fd_.get(), name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd) {
            if (errno == ENOENT)
                return std::optional<std::vector<std::byte>>{};
            return last_error();
        }
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0)
            return last_error();
        if (!S_ISREG(st.st_mode))
            return std::error_code(EINVAL, std::system_category());
        // Attachment files are never written in place (only replaced by rename), so the size
        // read here is the size of this file for as long as it stays open.
        std::vector<std::byte> out(static_cast<std::size_t>(st.st_size));
        std::size_t got = 0;
        while (got < out.size()) {
            const ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return last_error();
            }
            if (n == 0)
                break;
            got += static_cast<std::size_t>(n);
        }
        out.resize(got);
        return std::optional<std::vector<std::byte>>(std::move(out));
    }

    core::result<void> remove_file(std::uint64_t id) const {
        const std::string name = file_name(id);
        if (::unlinkat(dir_fd_.get(), name.c_str(), 0) != 0) {
            if (errno == ENOENT)
                return {};
            return last_error();
        }
        // Otherwise a crash could bring a removed attachment back for adoption.
        if (::fsync(dir_fd_.get()) != 0)
            return last_error();
        return {};
    }

    core::result<std::vector<std::uint64_t>> list_files() const {
        // A fresh open file description: a dup of dir_fd_ would share (and move) its offset.
        const int fd = ::openat(dir_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return last_error();
        DIR* d = ::fdopendir(fd);
        if (d == nullptr) {
            auto ec = last_error();
            ::close(fd);
            return ec;
        }
        std::vector<std::uint64_t> ids;
        std::vector<std::string> stale;
        std::error_code ec;
        for (;;) {
            errno = 0;
            const dirent* e = ::readdir(d);
            if (e == nullptr) {
                if (errno != 0)
                    ec = last_error();
                break;
            }
            const std::string_view name(e->d_name);
            if (auto id = parse_file_name(name)) {
                if (is_regular(fd, *e))
                    ids.push_back(*id);
            } else if (is_tmp_name(name)) {
                stale.emplace_back(name);
            }
        }
        ::closedir(d);
        if (ec)
            return ec;
        // The flock keeps other processes out and this store's calls run one at a time through
        // its queue, so every temporary file seen here is a leftover of a crash: no put is
        // writing it.
        bool removed = false;
        for (const auto& name : stale)
            removed |= ::unlinkat(dir_fd_.get(), name.c_str(), 0) == 0;
        if (removed)
            (void)::fsync(dir_fd_.get());
        std::sort(ids.begin(), ids.end());
        return ids;
    }

    static bool is_regular(int dir_fd, const dirent& e) noexcept {
        if (e.d_type == DT_REG)
            return true;
        if (e.d_type != DT_UNKNOWN)
            return false;
        struct stat st {};
        return ::fstatat(dir_fd, e.d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    }

    directory_store_options opts_;
    unique_fd dir_fd_;             // also holds the flock
    std::uint64_t tmp_serial_ = 0; // only touched by calls on queue_, one at a time
    core::offload_queue queue_;
};

} // namespace

std::unique_ptr<attachment_store> make_memory_store() {
    return std::make_unique<memory_store>();
}

std::unique_ptr<attachment_store> make_directory_store(std::string dir,
                                                       directory_store_options opts) {
    return std::make_unique<directory_store>(std::move(dir), std::move(opts));
}

} // namespace coronet::ws
