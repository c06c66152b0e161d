// Node's verdict on every request of a corpus file (see corpus.txt for the format): each request
// is written raw, on its own connection, to a node http server on 127.0.0.1:0; the first final
// (non-1xx) response decides. Prints "#node\t<node version>\t<llhttp version>", then one line per
// case: "<name>\t<accept|reject>\t<detail>". A 2xx is accept; an error status, a connection
// closed without a response, or no answer within the timeout is reject. Node only gives a second
// opinion: the RFC verdict of each case is in corpus.txt. Usage: node node_verdicts.js corpus.txt
'use strict';
const fs = require('fs');
const http = require('http');
const net = require('net');

const ANSWER_TIMEOUT_MS = 3000;
const PARALLEL = 8;

function unescape(s) {
    let out = '';
    for (let i = 0; i < s.length; ++i) {
        if (s[i] !== '\\') { out += s[i]; continue; }
        const e = s[++i];
        if (e === 'r') out += '\r';
        else if (e === 'n') out += '\n';
        else if (e === 't') out += '\t';
        else if (e === '\\') out += '\\';
        else if (e === 'x') { out += String.fromCharCode(parseInt(s.substr(i + 1, 2), 16)); i += 2; }
        else throw new Error(`bad escape \\${e} in ${s}`);
    }
    return out;
}

function load(path) {
    const cases = [];
    for (const line of fs.readFileSync(path, 'latin1').split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        // <name> TAB <rfc verdict> TAB <section> TAB <bytes>; only the name and bytes matter here.
        const fields = line.split('\t');
        if (fields.length !== 4) throw new Error(`corpus line without 4 TAB-separated fields: ${line}`);
        cases.push({ name: fields[0], bytes: Buffer.from(unescape(fields[3]), 'latin1') });
    }
    return cases;
}

function ask(port, bytes) {
    return new Promise((resolve) => {
        let answer = '';
        let settled = false;
        const finish = (why) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            sock.destroy();
            const statuses = [...answer.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
            const final = statuses.find((s) => s >= 200);
            if (final === undefined) resolve(['reject', why]);
            else resolve([final < 300 ? 'accept' : 'reject', String(final)]);
        };
        const sock = net.connect(port, '127.0.0.1', () => sock.end(bytes));
        sock.on('data', (d) => { answer += d.toString('latin1'); });
        sock.on('error', () => finish('error'));
        sock.on('close', () => finish('closed'));
        const timer = setTimeout(() => finish('timeout'), ANSWER_TIMEOUT_MS);
    });
}

async function main() {
    const cases = load(process.argv[2]);
    const server = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => res.end('ok'));
    });
    // CONNECT and Upgrade requests parsed fine: answer them as accepted too.
    const tunnel = (req, socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    server.on('connect', tunnel);
    server.on('upgrade', tunnel);
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const port = server.address().port;

    const verdicts = new Array(cases.length);
    let next = 0;
    const worker = async () => {
        while (next < cases.length) {
            const i = next++;
            verdicts[i] = await ask(port, cases[i].bytes);
        }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    server.close();
    process.stdout.write(`#node\t${process.versions.node}\t${process.versions.llhttp}\n`);
    for (let i = 0; i < cases.length; ++i)
        process.stdout.write(`${cases[i].name}\t${verdicts[i][0]}\t${verdicts[i][1]}\n`);
}

main().catch((e) => { console.error(e); process.exit(2); });
