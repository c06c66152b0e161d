// docs/ws.md, "JSON": a JSON chat with <coronet/ws/json.hpp>. Below the shown parts, main()
// joins a client and a server session over loopback TCP, says lines, sends malformed JSON and
// a binary message, and checks the answers (test docs.snippet.ws_json).
// [docs:begin types]
#include <coronet/ws/json.hpp> // the only file that needs nlohmann/json

#include <string>

namespace core = coronet::core;
namespace ws = coronet::ws;

struct chat_line {
    std::string from;
    std::string text;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(chat_line, from, text) // to_json and from_json
// [docs:end types]

// [docs:begin server]
// A coroutine-style handler: answers every chat line, and bad input with an error message.
core::task<void> chat(ws::session& s) {
    for (;;) {
        auto line = co_await ws::receive_json<chat_line>(s);
        // Closed, or a protocol or transport error: the session is over. A JSON error (not
        // text, malformed, too deep, not a chat_line) consumed one message: answer and go on.
        if (!line && line.error().category() != ws::json_category())
            co_return;
        nlohmann::json answer;
        if (line)
            answer = {{"from", "echo"}, {"text", line->from + " said " + line->text}};
        else
            answer = {{"error", line.error().message()}};
        auto sent = co_await ws::send_json(s, answer);
        if (!sent)
            co_return;
    }
}
// [docs:end server]

// [docs:begin client]
// Says `line` and returns the server's answer.
core::task<core::result<chat_line>> say(ws::session& s, chat_line line) {
    auto sent = co_await ws::send_json(s, line); // to_json, then one text message
    if (!sent)
        co_return sent.error();
    co_return co_await ws::receive_json<chat_line>(s); // parsed, depth-checked, converted
}
// [docs:end client]

#include <coronet/core/loop.hpp>
#include <coronet/core/socket.hpp>
#include <coronet/core/when.hpp>

#include <cstdio>
#include <memory>
#include <span>
#include <tuple>

namespace {

bool check(bool ok, const char* what) {
    std::fprintf(stderr, "%s: %s\n", ok ? "ok" : "FAILED", what);
    return ok;
}

core::task<bool> talk(ws::session& s) {
    bool ok = true;
    const chat_line hello{"ada", "hello"}; // named, not braced inside co_await: g++ 12
    auto back = co_await say(s, hello);
    ok &= check(back && back->text == "ada said hello", "a line is answered");
    auto sent = co_await s.send_text("{\"from\": \"ada\", \"text\": ");
    auto answer = co_await ws::receive_json(s);
    ok &= check(sent && answer && answer->value("error", "") == "malformed JSON",
                "malformed JSON gets an error answer");
    const std::string binary = "{}";
    sent = co_await s.send_binary(std::as_bytes(std::span(binary)));
    answer = co_await ws::receive_json(s);
    ok &= check(sent && answer && answer->contains("error"), "a binary message gets one too");
    const chat_line again{"ada", "still here"};
    back = co_await say(s, again);
    ok &= check(back && back->text == "ada said still here", "the conversation goes on");
    auto closed = co_await s.close();
    ok &= check(closed.has_value(), "the client closes cleanly");
    co_return ok;
}

// A client and a server session over loopback TCP (the opening handshake is another page's).
core::task<int> run_checks(core::loop& lp) {
    auto listener = core::tcp_listener::bind(lp, core::endpoint::loopback_v4(0)).value();
    auto connected = co_await core::tcp_stream::connect(listener.local_endpoint().value());
    auto accepted = co_await listener.accept();
    if (!check(connected && accepted, "loopback connection"))
        co_return 1;
    ws::session client(std::make_unique<core::tcp_stream>(std::move(*connected)), ws::role::client);
    ws::session server(std::make_unique<core::tcp_stream>(std::move(*accepted)), ws::role::server);
    auto r = co_await core::when_all(chat(server), talk(client));
    co_return std::get<1>(r) ? 0 : 1;
}

} // namespace

int main() {
    core::loop lp;
    return core::run(lp, run_checks(lp));
}
