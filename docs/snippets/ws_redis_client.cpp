// docs/scaling.md, "The Redis client": commands, pipelining, publish and subscribe. Compiled by
// tests/docs (running it needs a redis-server; tests/ws_redis runs the same calls against one).
// [docs:begin]
#include <coronet/core/when.hpp>
#include <coronet/ws_redis/connection.hpp>
#include <coronet/ws_redis/subscriber.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace core = coronet::core;
namespace redis = coronet::ws_redis;

// Counts a visit; `where` is e.g. "redis://:secret@127.0.0.1:6379/2" or "unix:///run/r.sock".
core::task<core::result<long long>> count_visit(std::string where) {
    auto url = redis::url::parse(where);
    if (!url)
        co_return url.error(); // errc::bad_url
    redis::options opts;       // 5 s deadlines, at most 64 MiB per reply
    auto conn = co_await redis::connection::connect(*url, opts);
    if (!conn)
        co_return conn.error(); // ECONNREFUSED, timed_out, auth_failed, select_failed...
    // Two calls awaited together are pipelined: one write, each caller gets its own reply.
    auto [set, visits] = co_await core::when_all(conn->command("SET", "last", "now"),
                                                 conn->command("INCR", "visits"));
    if (!set || !visits)
        co_return set ? visits.error() : set.error(); // the connection broke: an error code
    if (visits->is_error()) // an error reply is a value: "WRONGTYPE ..." in visits->str
        co_return make_error_code(redis::errc::error_reply);
    auto told = co_await conn->publish("visits", std::to_string(visits->integer));
    if (!told)
        co_return told.error();
    co_return static_cast<long long>(visits->integer);
}

// Prints what is published on "visits" until the stop token or a failure ends it.
core::task<core::result<void>> watch_visits(redis::url where) {
    auto sub = co_await redis::subscriber::connect(where);
    if (!sub)
        co_return sub.error();
    std::vector<std::string> channels = {"visits"}; // named first: g++ 12, docs/core.md
    auto subscribed = co_await sub->subscribe(channels);
    if (!subscribed)
        co_return subscribed.error();
    for (;;) {
        auto m = co_await sub->next(); // waits for the next message
        if (!m)
            co_return m.error(); // end_of_stream when Redis went away, operation_canceled...
        std::printf("%s: %s\n", m->channel.c_str(), m->payload.c_str());
    }
}
// [docs:end]
