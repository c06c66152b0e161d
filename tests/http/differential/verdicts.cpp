// http.differential: every request of corpus.txt is judged by the RFC verdict the corpus records
// for it (RFC 9112 / RFC 9110, RFC 3986 for targets) against coronet's request_parser +
// chunked_decoder. Node's http server (node_verdicts.js) gives a second opinion that is reported,
// never judged. The run fails (exit 1) only when
//   (a) coronet accepts a request the RFC says to reject: nothing in stricter.md can excuse it;
//   (b) coronet rejects a request the RFC says to accept and stricter.md gives no reason, or the
//       RFC leaves the choice open and stricter.md does not record coronet's choice;
//   (c) stricter.md is inconsistent: it lists a case corpus.txt lacks, records a choice coronet
//       does not make, or records "accept" for an open case that carries Content-Length or
//       Transfer-Encoding;
// or when an input file is malformed or node_verdicts.js fails. Stale stricter.md entries and
// every disagreement with node are only reported. Without node the RFC judgement runs all the
// same and the summary says node's opinion was left out (exit 0: node does not decide anything).
//
//   http_differential --corpus F --stricter F --node PATH --script F   judge (PATH may be empty)
//   http_differential --corpus F                                       print coronet's verdicts
#include <coronet/http/parser.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace {

using namespace coronet::http;

enum class rfc_verdict { accept, reject, either };

const char* to_string(rfc_verdict v) {
    switch (v) {
    case rfc_verdict::accept:
        return "accept";
    case rfc_verdict::reject:
        return "reject";
    case rfc_verdict::either:
        return "either";
    }
    return "?";
}

struct corpus_case {
    std::string name;
    rfc_verdict rfc = rfc_verdict::reject;
    std::string section; // the rule that decides, e.g. "RFC 9112 §3.2 (MUST 400)"
    std::string bytes;
};

struct verdict {
    bool accept = false;
    std::string detail; // the status that was or would be answered, or why there is none
};

const char* accept_word(bool accept) {
    return accept ? "accept" : "reject";
}

const char* accepts_word(bool accept) {
    return accept ? "accepts" : "rejects";
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::size_t begin = 0;
    for (;;) {
        auto end = s.find(sep, begin);
        out.push_back(s.substr(begin, end - begin));
        if (end == std::string::npos)
            return out;
        begin = end + 1;
    }
}

std::string trim(const std::string& s) {
    auto begin = s.find_first_not_of(" \t");
    if (begin == std::string::npos)
        return {};
    return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

// The escapes of corpus.txt: \r \n \t \\ \xHH (same as node_verdicts.js).
std::string unescape(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        char e = i + 1 < s.size() ? s[++i] : '?';
        if (e == 'r')
            out += '\r';
        else if (e == 'n')
            out += '\n';
        else if (e == 't')
            out += '\t';
        else if (e == '\\')
            out += '\\';
        else if (e == 'x' && i + 2 < s.size()) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            throw std::runtime_error("bad escape in corpus line: " + s);
        }
    }
    return out;
}

// "<name> TAB <accept|reject|either> TAB <section> TAB <bytes>" per line (see corpus.txt).
std::vector<corpus_case> load_corpus(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error("cannot read " + path);
    std::vector<corpus_case> cases;
    std::set<std::string> names;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        auto fields = split(line, '\t');
        if (fields.size() != 4 || fields[0].empty() || fields[2].empty())
            throw std::runtime_error("corpus line is not <name> TAB <rfc> TAB <section> TAB "
                                     "<bytes>: " +
                                     line);
        corpus_case c{fields[0], rfc_verdict::reject, fields[2], unescape(fields[3])};
        if (fields[1] == "accept")
            c.rfc = rfc_verdict::accept;
        else if (fields[1] == "either")
            c.rfc = rfc_verdict::either;
        else if (fields[1] != "reject")
            throw std::runtime_error("RFC verdict of " + c.name +
                                     " is not accept, reject or either: " + fields[1]);
        if (!names.insert(c.name).second)
            throw std::runtime_error("duplicate case " + c.name);
        cases.push_back(std::move(c));
    }
    return cases;
}

// Accepts when the whole first message (head and body) is well-formed and complete.
verdict coronet_verdict(std::string_view msg) {
    request_parser parser;
    switch (parser.parse(msg)) {
    case parse_status::error:
        return {false, std::to_string(status_of(parser.error()))};
    case parse_status::need_more:
        return {false, "incomplete-head"};
    case parse_status::complete:
        break;
    }
    std::string_view body = msg.substr(parser.head_size());
    const request_head& head = parser.head();
    switch (head.body) {
    case body_kind::none:
    case body_kind::until_close:
        return {true, "200"};
    case body_kind::content_length:
        if (body.size() < head.content_length)
            return {false, "incomplete-body"};
        return {true, "200"};
    case body_kind::chunked: {
        chunked_decoder decoder(parser.limits());
        while (!body.empty()) {
            auto step = decoder.decode(body);
            if (step.ec)
                return {false, std::to_string(status_of(step.ec))};
            body.remove_prefix(step.consumed);
            if (step.done)
                return {true, "200"};
            if (step.consumed == 0)
                break;
        }
        return {false, "incomplete-body"};
    }
    }
    return {false, "?"};
}

// A request with a Content-Length or Transfer-Encoding field line: where it ends is at stake, so
// coronet must take the strict side of any choice the RFC leaves open.
bool touches_framing(const std::string& bytes) {
    std::string lower = bytes;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) {
        return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    });
    return lower.find("\ncontent-length") != std::string::npos ||
           lower.find("\ntransfer-encoding") != std::string::npos;
}

// A markdown table of stricter.md: the header cells, then each row by its first cell (the case
// name, backticks removed).
struct md_table {
    std::vector<std::string> header;
    std::map<std::string, std::vector<std::string>> rows;

    bool has(const std::string& name) const { return rows.count(name) != 0; }

    // The cell of `name`'s row under the column headed `column`; empty when there is none.
    std::string cell(const std::string& name, const std::string& column) const {
        auto row = rows.find(name);
        auto col = std::find(header.begin(), header.end(), column);
        if (row == rows.end() || col == header.end())
            return {};
        auto i = static_cast<std::size_t>(col - header.begin());
        return i < row->second.size() ? row->second[i] : std::string();
    }
};

struct stricter_doc {
    md_table stricter; // "## Coronet stricter than the RFC": | case | status | reason |
    md_table open;     // "## RFC leaves it open": | case | coronet | reason |
    md_table node;     // "## Node versions": | case | RFC | node X (llhttp Y) ... | note |
    std::vector<std::string> node_columns; // the headers of node.header that name a node version
};

stricter_doc load_stricter(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        throw std::runtime_error("cannot read " + path);
    stricter_doc doc;
    md_table* table = nullptr;
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("## ", 0) == 0) {
            if (line.rfind("## Coronet stricter than the RFC", 0) == 0)
                table = &doc.stricter;
            else if (line.rfind("## RFC leaves it open", 0) == 0)
                table = &doc.open;
            else if (line.rfind("## Node versions", 0) == 0)
                table = &doc.node;
            else
                table = nullptr;
            continue;
        }
        if (table == nullptr || line.rfind("|", 0) != 0)
            continue;
        auto cells = split(line, '|');
        cells.erase(cells.begin()); // before the first '|'
        if (!cells.empty() && trim(cells.back()).empty())
            cells.pop_back(); // after the last '|'
        for (auto& c : cells)
            c = trim(c);
        if (cells.empty() || cells[0].find_first_not_of("-: ") == std::string::npos)
            continue; // the rule under the header
        if (table->header.empty()) {
            table->header = cells;
            continue;
        }
        std::string name = cells[0];
        if (name.size() >= 2 && name.front() == '`' && name.back() == '`')
            name = name.substr(1, name.size() - 2);
        if (!table->rows.emplace(name, cells).second)
            throw std::runtime_error("stricter.md lists " + name + " twice in one table");
    }
    for (const auto& h : doc.node.header)
        if (h.rfind("node ", 0) == 0)
            doc.node_columns.push_back(h);
    return doc;
}

struct node_opinion {
    std::string label; // "node 18.20.4 (llhttp 6.1.1)", as in stricter.md's node table
    std::map<std::string, verdict> verdicts;
};

node_opinion run_node(const std::string& node, const std::string& script,
                      const std::string& corpus) {
    std::string cmd = "'" + node + "' '" + script + "' '" + corpus + "'";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    if (pipe == nullptr)
        throw std::runtime_error("cannot run " + cmd);
    std::string out;
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0)
        out.append(buf, n);
    int rc = ::pclose(pipe);
    if (rc != 0)
        throw std::runtime_error("node_verdicts.js failed (status " + std::to_string(rc) + ")");
    node_opinion opinion;
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
        auto fields = split(line, '\t');
        if (fields.size() != 3)
            throw std::runtime_error("unexpected line from node_verdicts.js: " + line);
        if (fields[0] == "#node")
            opinion.label = "node " + fields[1] + " (llhttp " + fields[2] + ")";
        else
            opinion.verdicts[fields[0]] = {fields[1] == "accept", fields[2]};
    }
    if (opinion.label.empty())
        throw std::runtime_error("node_verdicts.js did not print its node version");
    return opinion;
}

struct tally {
    int agree_accept = 0; // RFC accept, coronet accept
    int agree_reject = 0; // RFC reject, coronet reject
    int open_accept = 0;  // RFC either, coronet accepts as documented
    int open_reject = 0;  // RFC either, coronet rejects as documented
    int stricter = 0;     // RFC accept, coronet rejects, documented
    int looser = 0;       // (a)
    int undocumented = 0; // (b)
    int inconsistent = 0; // (c)
    int harness = 0;      // node gave no verdict
    int stale = 0;        // stale stricter.md entries (reported only)
    int node_vs_rfc = 0;  // node disagrees with the RFC verdict
    int node_vs_coronet = 0;
    std::map<std::string, int> node_vs_recorded; // per recorded node version
    int failures() const { return looser + undocumented + inconsistent + harness; }
};

int judge(const std::vector<corpus_case>& cases, const stricter_doc& doc,
          const std::optional<node_opinion>& node, const std::string& node_missing) {
    tally t;
    std::set<std::string> names;
    if (node)
        std::cout << "second opinion: " << node->label << " (reported, never judged)\n";
    else
        std::cout << "second opinion: left out (" << node_missing << ")\n";

    for (const auto& c : cases) {
        names.insert(c.name);
        const verdict ours = coronet_verdict(c.bytes);
        std::string outcome;
        bool fail = false;
        std::vector<std::string> notes;
        switch (c.rfc) {
        case rfc_verdict::accept:
            if (ours.accept) {
                ++t.agree_accept;
            } else if (doc.stricter.has(c.name)) {
                ++t.stricter;
                outcome = "stricter than the RFC, reason in stricter.md";
            } else {
                ++t.undocumented;
                fail = true;
                outcome = "coronet is stricter than the RFC and stricter.md gives no reason (add "
                          "it under \"Coronet stricter than the RFC\", or fix the parser)";
            }
            break;
        case rfc_verdict::reject:
            if (ours.accept) {
                ++t.looser;
                fail = true;
                outcome = "coronet is LOOSER than the RFC: a parser bug, nothing in stricter.md "
                          "can excuse it";
            } else {
                ++t.agree_reject;
            }
            break;
        case rfc_verdict::either: {
            const std::string choice = doc.open.cell(c.name, "coronet");
            if (choice.empty()) {
                ++t.undocumented;
                fail = true;
                outcome = std::string("the RFC leaves this open and stricter.md does not record "
                                      "coronet's choice (") +
                          accept_word(ours.accept) + ") under \"RFC leaves it open\"";
            } else if (choice != "accept" && choice != "reject") {
                ++t.inconsistent;
                fail = true;
                outcome = "stricter.md records \"" + choice + "\": write accept or reject";
            } else if (choice == "accept" && touches_framing(c.bytes)) {
                ++t.inconsistent;
                fail = true;
                outcome = "stricter.md records accept, but the request carries Content-Length or "
                          "Transfer-Encoding: on framing coronet takes the strict side";
            } else if ((choice == "accept") != ours.accept) {
                ++t.inconsistent;
                fail = true;
                outcome = "stricter.md records coronet's choice as " + choice + ", but it does " +
                          accept_word(ours.accept);
            } else {
                ++(ours.accept ? t.open_accept : t.open_reject);
                outcome = "the RFC leaves it open; coronet's choice is in stricter.md";
            }
            break;
        }
        }
        if (doc.stricter.has(c.name) && (c.rfc != rfc_verdict::accept || ours.accept)) {
            ++t.stale;
            notes.push_back("stale: stricter.md lists it as stricter than the RFC; remove it");
        }
        const std::string node_table_rfc = doc.node.cell(c.name, "RFC");
        if (!node_table_rfc.empty() && node_table_rfc.rfind(to_string(c.rfc), 0) != 0) {
            ++t.stale;
            notes.push_back("stale: stricter.md's node table gives the RFC verdict as " +
                            node_table_rfc + ", corpus.txt as " + to_string(c.rfc));
        }
        if (doc.open.has(c.name) && c.rfc != rfc_verdict::either) {
            ++t.stale;
            notes.push_back("stale: stricter.md records a choice, but corpus.txt says the RFC "
                            "decides (" +
                            std::string(to_string(c.rfc)) + "); remove it");
        }

        std::string node_line;
        if (node) {
            auto it = node->verdicts.find(c.name);
            if (it == node->verdicts.end()) {
                ++t.harness;
                fail = true;
                node_line = "node_verdicts.js gave no verdict";
            } else {
                const verdict& nv = it->second;
                const bool vs_rfc =
                    c.rfc != rfc_verdict::either && nv.accept != (c.rfc == rfc_verdict::accept);
                const bool vs_coronet = nv.accept != ours.accept;
                t.node_vs_rfc += vs_rfc ? 1 : 0;
                t.node_vs_coronet += vs_coronet ? 1 : 0;
                std::vector<std::string> recorded;
                for (const auto& col : doc.node_columns) {
                    const std::string rec = doc.node.cell(c.name, col);
                    if (col == node->label) {
                        if (!rec.empty() && rec != accept_word(nv.accept)) {
                            ++t.stale;
                            notes.push_back("stale: stricter.md's node table records " + rec +
                                            " for this node version");
                        } else if (rec.empty() && (vs_rfc || vs_coronet)) {
                            ++t.stale;
                            notes.push_back("stricter.md's node table lacks this node's "
                                            "disagreement: add a row");
                        }
                    } else if (!rec.empty()) {
                        recorded.push_back(col + " " + accepts_word(rec == "accept") +
                                           " (recorded)");
                        if (rec != accept_word(nv.accept))
                            ++t.node_vs_recorded[col];
                    }
                }
                if (vs_rfc || vs_coronet || !recorded.empty()) {
                    node_line =
                        node->label + " " + accepts_word(nv.accept) + " (" + nv.detail + ")";
                    for (const auto& r : recorded)
                        node_line += ", " + r;
                    if (vs_rfc && vs_coronet)
                        node_line += ": node disagrees with the RFC and coronet";
                    else if (vs_rfc)
                        node_line += ": node disagrees with the RFC";
                    else if (vs_coronet)
                        node_line += ": node disagrees with coronet";
                }
            }
        }

        std::cout << (fail ? "FAIL  " : "ok    ") << c.name << ": RFC " << to_string(c.rfc)
                  << ", coronet " << accept_word(ours.accept) << " (" << ours.detail << ")";
        if (!outcome.empty())
            std::cout << ": " << outcome;
        std::cout << " [" << c.section << "]\n";
        if (!node_line.empty())
            std::cout << "        second opinion: " << node_line << '\n';
        for (const auto& n : notes)
            std::cout << "        note: " << n << '\n';
    }

    for (const auto* table : {&doc.stricter, &doc.open, &doc.node}) {
        for (const auto& [name, row] : table->rows) {
            if (names.count(name) == 0) {
                std::cout << "FAIL  stricter.md lists " << name << ", which corpus.txt lacks\n";
                ++t.inconsistent;
            }
        }
    }

    const int open = t.open_accept + t.open_reject;
    std::cout << "\nsummary: " << cases.size() << " cases, " << t.failures() << " failures; "
              << t.agree_accept + t.agree_reject << " as the RFC says, " << open
              << " left open by the RFC (coronet's choice documented), " << t.stricter
              << " stricter than the RFC (documented), " << t.looser << " looser; ";
    if (node)
        std::cout << node->label << " disagrees with the RFC on " << t.node_vs_rfc
                  << " and with coronet on " << t.node_vs_coronet << '\n';
    else
        std::cout << "node's second opinion left out\n";
    if (t.failures() != 0)
        std::cout << "  failures:                " << t.looser << " looser than the RFC, "
                  << t.undocumented << " stricter or open without a reason in stricter.md, "
                  << t.inconsistent << " stricter.md inconsistencies, " << t.harness
                  << " without a node verdict\n";
    std::cout << "  as the RFC says:         " << t.agree_accept + t.agree_reject << " ("
              << t.agree_accept << " accept, " << t.agree_reject << " reject)\n"
              << "  left open by the RFC:    " << open << ", coronet's choice in stricter.md ("
              << t.open_accept << " accept, " << t.open_reject << " reject)\n"
              << "  stricter than the RFC:   " << t.stricter << ", reason in stricter.md\n"
              << "  looser than the RFC:     " << t.looser << '\n';
    if (node) {
        std::cout << "  node (second opinion):   " << node->label << " disagrees with the RFC on "
                  << t.node_vs_rfc << ", with coronet on " << t.node_vs_coronet << '\n';
        for (const auto& col : doc.node_columns)
            if (col != node->label)
                std::cout << "                           recorded " << col << " differs from it on "
                          << t.node_vs_recorded[col] << '\n';
    } else {
        std::cout << "  node (second opinion):   left out (" << node_missing
                  << "); the RFC judgement above does not need it\n";
    }
    std::cout << "  stricter.md notes:       " << t.stale << " stale or missing entries (reported, "
              << "not failed)\n";
    return t.failures() == 0 ? 0 : 1;
}

int run(int argc, char** argv) {
    std::map<std::string, std::string> args;
    for (int i = 1; i + 1 < argc; i += 2)
        args[argv[i]] = argv[i + 1];
    if (args["--corpus"].empty()) {
        std::cerr << "usage: http_differential --corpus F [--stricter F --node PATH --script F]\n";
        return 1;
    }
    const auto cases = load_corpus(args["--corpus"]);
    if (args["--stricter"].empty()) {
        for (const auto& c : cases) {
            verdict v = coronet_verdict(c.bytes);
            std::cout << c.name << '\t' << accept_word(v.accept) << '\t' << v.detail << '\n';
        }
        return 0;
    }
    const auto doc = load_stricter(args["--stricter"]);
    const std::string& node = args["--node"];
    std::optional<node_opinion> opinion;
    std::string node_missing;
    if (node.empty())
        node_missing = "node not found; configure with -DCORONET_NODE=/path/to/node";
    else if (::access(node.c_str(), X_OK) != 0)
        node_missing = node + " is not executable";
    else
        opinion = run_node(node, args["--script"], args["--corpus"]);
    return judge(cases, doc, opinion, node_missing);
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "http_differential: " << e.what() << '\n';
        return 1;
    }
}
