// soak_client: every delivery checked against what its sender sent (payload.hpp) and
// booked in the ledger (ledger.hpp).
#include "soak_client.hpp"

#include "payload.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace soak = coronet::soak;

namespace coronet::soak::load {

namespace {

// ---- verification -----------------------------------------------------------------------

/// Records a hello (sequence 0) from `sender`, once per sender (only the join phase looks).
void on_hello(run_state& st, client& c, std::uint32_t sender) {
    std::uint8_t& seen = st.hello_seen[c.id * st.slots + (sender - c.first)];
    if (seen == 0) {
        seen = 1;
        ++st.hellos[c.id];
    }
}

/// A chat line that is not "NAME: TEXT": "* NAME joined" while rooms fill, "* NAME left" once
/// clients leave; anything else is unexpected.
bool chat_notice_allowed(const run_state& st, std::string_view line) {
    const bool joined = line.size() > 9 && line.substr(line.size() - 7) == " joined";
    const bool left = line.size() > 7 && line.substr(line.size() - 5) == " left";
    if (joined)
        return st.phase == phase_kind::join || st.phase == phase_kind::connect;
    return left && st.phase >= phase_kind::closing;
}

/// Checks one received message against what its sender sent; records it in the ledger.
void verify(run_state& st, client& c, const ws::message& m) {
    std::string_view body = m.data;
    if (st.o.mode == mode_kind::chat) {
        if (body.substr(0, 2) == "* ") {
            if (!chat_notice_allowed(st, body)) {
                ++st.counts.unexpected;
                st.note("client %u: unexpected notice \"%.60s\"", c.id, m.data.c_str());
            }
            return;
        }
        const std::size_t colon = body.find(": ");
        if (colon == std::string_view::npos) {
            ++st.counts.corrupted;
            st.note("client %u: not a chat line: \"%.60s\"", c.id, m.data.c_str());
            return;
        }
        const std::string_view name = body.substr(0, colon);
        body.remove_prefix(colon + 2);
        const auto id = soak::parse_id(body);
        if (!id || name != chat_name(id->sender)) {
            ++st.counts.corrupted;
            st.note("client %u: chat line from \"%.*s\" does not match its text", c.id,
                    static_cast<int>(name.size()), name.data());
            return;
        }
    }
    const auto id = soak::parse_id(body);
    if (!id || id->sender < c.first || id->sender >= c.first + c.members ||
        (st.o.mode == mode_kind::rooms && id->sender == c.id)) {
        ++st.counts.corrupted;
        st.note("client %u: message from outside its room or unreadable: \"%.40s\"", c.id,
                std::string(body).c_str());
        return;
    }
    const client& from = st.clients[id->sender];
    if (id->seq == 0) {
        if (st.o.mode == mode_kind::echo || body != soak::hello_payload(id->sender)) {
            ++st.counts.corrupted;
            st.note("client %u: bad hello from %u", c.id, id->sender);
            return;
        }
        on_hello(st, c, id->sender);
        return;
    }
    if (id->seq > from.sent) {
        ++st.counts.corrupted;
        st.note("client %u: message %u from %u, which sent only %u", c.id, id->seq, id->sender,
                from.sent);
        return;
    }
    const bool binary = soak::sent_as_binary(id->seq, st.binary_allowed());
    if (m.is_text() == binary || body != soak::make_payload(id->sender, id->seq, st.o.max_size)) {
        ++st.counts.corrupted;
        st.note("client %u: message %u from %u differs from what was sent (%zu bytes, %s)", c.id,
                id->seq, id->sender, body.size(), m.is_text() ? "text" : "binary");
        return;
    }
    const auto before = st.counts;
    st.book.record(c.id, id->sender - c.first, id->seq, st.counts);
    if (st.counts.duplicated != before.duplicated)
        st.note("client %u: message %u from %u again", c.id, id->seq, id->sender);
    else if (st.counts.reordered != before.reordered)
        st.note("client %u: message %u from %u after a later one", c.id, id->seq, id->sender);
}

/// The sender and sequence number of a data-phase message (nullopt for a hello, a notice or a
/// chat greeting).
std::optional<soak::message_id> data_id(const run_state& st, std::string_view body) {
    if (st.o.mode == mode_kind::chat) {
        const std::size_t colon = body.find(": ");
        if (body.substr(0, 2) == "* " || colon == std::string_view::npos)
            return std::nullopt;
        body.remove_prefix(colon + 2);
    }
    auto id = soak::parse_id(body);
    if (!id || id->seq == 0)
        return std::nullopt;
    return id;
}

} // namespace

/// --inject: breaks client 0's tenth data message on its way to the verifier (a held message,
/// for reorder, goes after the next one from the same sender).
void deliver(run_state& st, client& c, ws::message& m) {
    const auto id =
        c.id == 0 && st.o.inject != fault_kind::none ? data_id(st, m.data) : std::nullopt;
    if (!id || ++st.inject_seen < 10) {
        verify(st, c, m);
        return;
    }
    if (st.held && data_id(st, st.held->data)->sender == id->sender) {
        verify(st, c, m);
        verify(st, c, *st.held);
        st.held.reset();
        return;
    }
    if (st.inject_seen > 10) {
        verify(st, c, m);
        return;
    }
    std::fprintf(stderr, "soak_client: --inject: breaking client 0's message \"%.24s...\"\n",
                 m.data.c_str());
    switch (st.o.inject) {
    case fault_kind::none:
    case fault_kind::drop:
        return;
    case fault_kind::dup:
        verify(st, c, m);
        verify(st, c, m);
        return;
    case fault_kind::reorder:
        st.held = m;
        return;
    case fault_kind::corrupt:
        m.data.back() = static_cast<char>(m.data.back() ^ 0x01);
        verify(st, c, m);
        return;
    }
}

} // namespace coronet::soak::load
