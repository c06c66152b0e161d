// http.differential: coronet's accept/reject verdict on every request of corpus.txt against
// node's (node_verdicts.js). Any disagreement must be listed in stricter.md, in the section for
// its direction, with the RFC reason; anything else fails. Exits 0 (agree), 1 (a new
// disagreement or a bad input file) or 77 (skipped: node missing).
//
//   http_differential --corpus F --stricter F --node PATH --script F   compare with node
//   http_differential --corpus F                                       print coronet's verdicts
#include <coronet/http/parser.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

using namespace coronet::http;

struct corpus_case {
    std::string name;
    std::string bytes;
};

struct verdict {
    bool accept = false;
    std::string detail; // the status coronet would answer, or why there is none
};

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
        auto tab = line.find('\t');
        if (tab == std::string::npos)
            throw std::runtime_error("no tab in corpus line: " + line);
        corpus_case c{line.substr(0, tab), unescape(line.substr(tab + 1))};
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

// stricter.md: a section per direction, one table row per case: "| name | reason |".
struct allowed_lists {
    std::set<std::string> coronet_stricter; // coronet rejects, node accepts
    std::set<std::string> node_stricter;    // coronet accepts, node rejects
};

allowed_lists load_allowed(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        throw std::runtime_error("cannot read " + path);
    allowed_lists lists;
    std::set<std::string>* section = nullptr;
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("## ", 0) == 0) {
            if (line.find("Coronet rejects, node accepts") != std::string::npos)
                section = &lists.coronet_stricter;
            else if (line.find("Coronet accepts, node rejects") != std::string::npos)
                section = &lists.node_stricter;
            else
                section = nullptr;
            continue;
        }
        if (section == nullptr || line.rfind("| ", 0) != 0)
            continue;
        auto end = line.find(" |", 2);
        std::string name = line.substr(2, end - 2);
        if (name.size() >= 2 && name.front() == '`' && name.back() == '`')
            name = name.substr(1, name.size() - 2);
        if (name.empty() || name == "case" || name.find('-') == 0)
            continue; // header, rule
        section->insert(name);
    }
    return lists;
}

std::map<std::string, verdict> node_verdicts(const std::string& node, const std::string& script,
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
    std::map<std::string, verdict> verdicts;
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream fields(line);
        std::string name, accept, detail;
        std::getline(fields, name, '\t');
        std::getline(fields, accept, '\t');
        std::getline(fields, detail);
        verdicts[name] = {accept == "accept", detail};
    }
    return verdicts;
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
            std::cout << c.name << '\t' << (v.accept ? "accept" : "reject") << '\t' << v.detail
                      << '\n';
        }
        return 0;
    }
    const std::string& node = args["--node"];
    if (node.empty() || ::access(node.c_str(), X_OK) != 0) {
        std::cout << "SKIPPED: node not found (configure with -DCORONET_NODE=/path/to/node)\n";
        return 77;
    }
    const auto allowed = load_allowed(args["--stricter"]);
    const auto theirs = node_verdicts(node, args["--script"], args["--corpus"]);

    int failures = 0;
    int stricter = 0;
    int node_stricter = 0;
    std::set<std::string> seen;
    for (const auto& c : cases) {
        seen.insert(c.name);
        verdict ours = coronet_verdict(c.bytes);
        auto it = theirs.find(c.name);
        if (it == theirs.end()) {
            std::cout << "FAIL  " << c.name << ": node gave no verdict\n";
            ++failures;
            continue;
        }
        const verdict& node_v = it->second;
        const char* what = "agree";
        if (ours.accept && !node_v.accept) {
            if (allowed.node_stricter.count(c.name) != 0) {
                what = "node stricter (listed)";
                ++node_stricter;
            } else {
                what = "FAIL: coronet accepts what node rejects (list it in stricter.md only "
                       "if the RFC allows it and it cannot affect framing)";
                ++failures;
            }
        } else if (!ours.accept && node_v.accept) {
            if (allowed.coronet_stricter.count(c.name) != 0) {
                what = "coronet stricter (listed)";
                ++stricter;
            } else {
                what = "FAIL: coronet rejects what node accepts, not listed in stricter.md";
                ++failures;
            }
        } else if (allowed.coronet_stricter.count(c.name) + allowed.node_stricter.count(c.name) !=
                   0) {
            what = "agree (stale stricter.md entry: remove it)";
        }
        std::cout << (what[0] == 'F' ? "FAIL  " : "ok    ") << c.name << ": coronet "
                  << (ours.accept ? "accept" : "reject") << " (" << ours.detail << "), node "
                  << (node_v.accept ? "accept" : "reject") << " (" << node_v.detail << "): " << what
                  << '\n';
    }
    for (const auto* list : {&allowed.coronet_stricter, &allowed.node_stricter}) {
        for (const auto& name : *list) {
            if (seen.count(name) == 0) {
                std::cout << "FAIL  stricter.md lists " << name << ", which corpus.txt lacks\n";
                ++failures;
            }
        }
    }
    std::cout << cases.size() << " cases, " << stricter << " coronet stricter (listed), "
              << node_stricter << " node stricter (listed), " << failures << " failures\n";
    return failures == 0 ? 0 : 1;
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
