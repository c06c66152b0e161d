#include "resp.hpp"

#include <coronet/ws_redis/error.hpp>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace coronet::ws_redis::detail {
namespace {

using building = resp_reader::building;

// A value costs its node and its text; an array's element vector grows with its elements, each
// charged as it arrives, so a `*2000000000` header costs nothing until elements come.
bool charge(building& b, std::size_t bytes) noexcept {
    if (b.over_limit || bytes > b.limit - b.charged) {
        b.over_limit = true;
        return false;
    }
    b.charged += bytes;
    return true;
}

// hiredis builds depth first and fills an array's elements in index order, so a child is
// appended to its parent's vector; the vector only grows while its next element is created,
// after the previous one (and everything under it) is complete, so the pointers hiredis keeps
// for the arrays in progress (its task stack) stay valid.
reply* place(const redisReadTask* task, reply_type type, std::size_t text) {
    auto& b = *static_cast<building*>(task->privdata);
    if (!charge(b, sizeof(reply) + text))
        return nullptr;
    try {
        if (task->parent == nullptr) {
            b.root = new reply;
            b.root->type = type;
            return b.root;
        }
        auto* parent = static_cast<reply*>(task->parent->obj);
        reply& r = parent->elements.emplace_back();
        r.type = type;
        return &r;
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
}

void* create_string(const redisReadTask* task, char* str, std::size_t len) {
    reply_type type = reply_type::string;
    if (task->type == REDIS_REPLY_STATUS)
        type = reply_type::status;
    else if (task->type == REDIS_REPLY_ERROR)
        type = reply_type::error;
    reply* r = place(task, type, len);
    if (r == nullptr)
        return nullptr;
    try {
        r->str.assign(str, len);
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
    return r;
}

void* create_array(const redisReadTask* task, int elements) {
    (void)elements; // announced, not received: no reservation
    return place(task, reply_type::array, 0);
}

void* create_integer(const redisReadTask* task, long long value) {
    reply* r = place(task, reply_type::integer, 0);
    if (r != nullptr)
        r->integer = value;
    return r;
}

void* create_nil(const redisReadTask* task) {
    return place(task, reply_type::nil, 0);
}

// hiredis frees only the root of a reply it gives up on (the nested values belong to it); the
// root is the one it hands back from redisReaderGetReply, which `next` takes over.
void free_object(void* obj) {
    (void)obj;
}

redisReplyObjectFunctions object_functions = {
    create_string, create_array, create_integer, create_nil, free_object,
};

} // namespace

std::string encode_command(std::span<const std::string_view> args) {
    if (args.empty() || args.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
        return {};
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (std::string_view a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    char* out = nullptr;
    int n = redisFormatCommandArgv(&out, static_cast<int>(args.size()), argv.data(), lens.data());
    if (n < 0 || out == nullptr)
        throw std::bad_alloc();
    std::unique_ptr<char, void (*)(char*)> owned(out, redisFreeCommand);
    return std::string(out, static_cast<std::size_t>(n));
}

resp_reader::resp_reader(std::size_t max_reply_bytes)
    : reader_(redisReaderCreateWithFunctions(&object_functions)) {
    if (reader_ == nullptr)
        throw std::bad_alloc();
    state_.limit = max_reply_bytes;
    reader_->privdata = &state_;
}

resp_reader::~resp_reader() {
    redisReaderFree(reader_);
    delete state_.root;
}

std::size_t resp_reader::buffered() const noexcept {
    return reader_->len - reader_->pos;
}

core::result<void> resp_reader::feed(std::span<const std::byte> bytes) {
    if (bytes.size() > state_.limit || buffered() > state_.limit - bytes.size())
        return make_error_code(errc::reply_too_large);
    if (redisReaderFeed(reader_, reinterpret_cast<const char*>(bytes.data()), bytes.size()) !=
        REDIS_OK)
        return make_error_code(errc::protocol_error);
    return {};
}

core::result<std::optional<reply>> resp_reader::next() {
    void* obj = nullptr;
    int rc = redisReaderGetReply(reader_, &obj);
    if (rc != REDIS_OK) {
        // hiredis gave up on the reply in progress (it no longer refers to it).
        delete std::exchange(state_.root, nullptr);
        if (state_.over_limit)
            return make_error_code(errc::reply_too_large);
        return make_error_code(errc::protocol_error);
    }
    if (obj == nullptr) {
        // Incomplete. The bytes of the reply in progress are what hiredis still buffers plus
        // what its values already cost.
        if (buffered() > state_.limit - std::min(state_.limit, state_.charged))
            return make_error_code(errc::reply_too_large);
        return std::optional<reply>();
    }
    std::unique_ptr<reply> done(static_cast<reply*>(obj));
    state_.root = nullptr;
    state_.charged = 0;
    return std::optional<reply>(std::move(*done));
}

} // namespace coronet::ws_redis::detail
