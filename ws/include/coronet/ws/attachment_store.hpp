#pragma once

#include <coronet/core/result.hpp>
#include <coronet/core/task.hpp>
#include <coronet/ws/export.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace coronet::ws {

/// Where a connection's attachment (opaque bytes keyed by the connection's 64-bit id) is kept.
/// A store belongs to one loop: call it from coroutines on that loop only. Implementations may
/// run blocking I/O off the loop; each call completes on the calling loop. Calls are applied in
/// the order they were made (a `put` followed by a `get` of the same id sees the new value, even
/// when both were started before either finished). A call is not interrupted by cancellation:
/// it resumes its caller when it is done, so a finished `put` or `remove` is known to have
/// taken effect. Destroy a store only when none of its calls is pending.
class CORONET_WS_EXPORT attachment_store {
public:
    virtual ~attachment_store() = default;

    /// Stores `data` as the attachment of `id`, replacing any earlier one. When it succeeds the
    /// new value is what `get` returns (and, for a durable store, what a restarted process
    /// finds). Errors: the system category (`ENOSPC`, `EIO`...); after an error the store holds
    /// either the old value or the new one, never a mix.
    virtual core::task<core::result<void>> put(std::uint64_t id, std::vector<std::byte> data) = 0;

    /// The attachment of `id`, or an empty optional when there is none. Errors: the system
    /// category.
    virtual core::task<core::result<std::optional<std::vector<std::byte>>>>
    get(std::uint64_t id) = 0;

    /// Deletes the attachment of `id`; removing one that does not exist succeeds. Errors: the
    /// system category.
    virtual core::task<core::result<void>> remove(std::uint64_t id) = 0;

    /// The ids that have an attachment, ascending. After a restart these are what an earlier
    /// process left (a crash, or connections it never closed cleanly), for adoption onto new
    /// connections once the application has checked ownership. Errors: the system category.
    virtual core::task<core::result<std::vector<std::uint64_t>>> list() = 0;
};

/// An attachment store in memory: the default. Every call completes without suspending;
/// nothing survives the process.
CORONET_WS_EXPORT std::unique_ptr<attachment_store> make_memory_store();

/// The steps of a directory store's `put`, in order, as reported to `fault_hook`.
enum class write_stage : std::uint8_t {
    tmp_created,  ///< the temporary file exists and is empty
    half_written, ///< the first half of the bytes are in the temporary file (not synced)
    written,      ///< every byte is in the temporary file, not yet fsync'ed
    synced,       ///< the temporary file is fsync'ed and closed; the rename comes next
    renamed,      ///< the temporary file replaced `<dir>/<id>`; the directory is not yet synced
};

/// Settings of a directory store.
struct directory_store_options {
    /// Permission bits of attachment files (before the umask); attachments may hold secrets.
    unsigned file_mode = 0600;
    /// Called by `put` after each `write_stage`, on the offload pool thread that serves the
    /// store's calls (`core::offload_queue`), with the id being written. For fault-injection tests
    /// only. Returning a non-zero error_code makes `put` fail as if that I/O step had failed (the
    /// temporary file is removed and the error returned); throwing simulates a crash at that point
    /// (nothing is cleaned up; the exception reaches the caller of `put`); calling `_exit` is a
    /// real crash.
    std::function<std::error_code(write_stage, std::uint64_t id)> fault_hook;
};

/// A durable attachment store: one file per attachment in `dir`, named by the id as 16
/// lowercase hex digits (`00000000000004d2`). `put` writes a uniquely named temporary file
/// (`<hex id>.<pid>-<n>.tmp`), fsyncs it, renames it over `<dir>/<hex id>` and fsyncs the
/// directory, so a reader (or a process started after a crash at any point) sees either the
/// old attachment or the new one, never part of one. `remove` unlinks and fsyncs the directory.
/// `list` parses names strictly (other files are ignored) and deletes the temporary files a
/// crashed `put` left. File I/O runs on core's offload pool (`core::offload`) through one
/// `core::offload_queue` per store, so the loop never waits for the disk and the calls apply
/// one at a time in the order they were made, all on one pool thread; each call costs one
/// wake-up of the loop when it completes.
///
/// Creates `dir` (not its parents) if it does not exist and holds an exclusive `flock` on it for
/// the store's lifetime, so two live stores never share a directory (the kernel drops the lock
/// when a process dies, so a restarted server opens it at once). Throws std::system_error when
/// the directory cannot be created or opened, or is in use by another store.
CORONET_WS_EXPORT std::unique_ptr<attachment_store>
make_directory_store(std::string dir, directory_store_options opts = {});

} // namespace coronet::ws
