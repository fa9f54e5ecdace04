//! HTTP/2 situations over real sockets: a connection already open when capture
//! starts (late attach), and hostile HTTP/2 (HPACK bombs, CONTINUATION floods, invalid
//! indexes, huge SETTINGS, random frames after a valid preface, streams reset mid-body) in
//! both directions. The profiler stays up with bounded memory, never logs a wrong value, and
//! good traffic afterwards is still exact.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::hardening::{assert_bounded, garbage};
use crate::support::h2::*;
use crate::support::matrix::*;
use crate::support::*;

/// Peak resident memory allowed to the profiler (as in hostile.rs).
const MAX_RSS_MIB: u64 = 200;

/// A session used before capture starts, then after: its later exchanges are recovered
/// exactly where the bytes allow (`:path` is never indexed by nghttp2, so every URL is), what
/// referred to HPACK entries from before capture is counted in `unknown_headers`, and nothing
/// is guessed.
#[apply(root_test!)]
fn late_attach_to_an_open_h2_connection() {
    let (_server, port) = node_h2_server(Path::new("node"), None);
    let mut session = NodeH2Session::open(port);
    assert_eq!(session.requests(12, "pre"), 12);
    let profiler = Profiler::start(&[port], &[]);
    let n = 24;
    assert_eq!(session.requests(n, "post"), n);
    session.close();
    let (records, _) = stop(profiler);
    let want = sorted(&ids("post", n));
    for role in ["client", "server"] {
        let side = Side::of(&records, role, "node");
        for r in side.requests.iter().chain(&side.responses) {
            assert_eq!(r["proto"], "h2", "{r}");
            let id = r["url"].as_str().and_then(url_id);
            assert!(
                id.is_none_or(|id| id.starts_with("post")),
                "an exchange from before capture was logged: {r}"
            );
            // Whatever is shown is right: known values only.
            if let (Some(id), Some(echo)) = (id, header(r, "x-request-id")) {
                assert_eq!(id, echo, "{r}");
            }
            if let Some(authority) = r["authority"].as_str() {
                assert_eq!(authority, format!("127.0.0.1:{port}"), "{r}");
            }
            if let Some(ct) = header(r, "content-type") {
                assert_eq!(ct, "text/plain", "{r}");
            }
        }
        assert_ids(&url_ids(&side.requests), &want, &format!("{role} requests"));
        assert_ids(&side.paired_url_ids(), &want, &format!("{role} paired"));
        // The header table entries made before capture are unknown: flagged, not guessed.
        let flagged = side
            .requests
            .iter()
            .chain(&side.responses)
            .filter(|r| r["unknown_headers"].as_u64().unwrap_or(0) > 0)
            .count();
        assert!(flagged > 0, "{role}: nothing flagged unknown");
        note(
            &format!("late attach, node http2 h2c session: {role} side (flagged {flagged})"),
            n,
            side.paired().len(),
        );
    }
    assert_pairing_exact(&records);
}

// ------------------------------------------------------------- hostile HTTP/2

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = pairs
        .iter()
        .flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes()))
        .collect();
    frame(SETTINGS, 0, 0, &payload)
}

/// An HPACK integer with an `n`-bit prefix under `first` (RFC 7541 5.1).
fn hpack_int(first: u8, n: u32, mut value: u64) -> Vec<u8> {
    let max = (1u64 << n) - 1;
    if value < max {
        return vec![first | value as u8];
    }
    let mut out = vec![first | max as u8];
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
    out
}

fn hpack_str(s: &[u8]) -> Vec<u8> {
    let mut out = hpack_int(0, 7, s.len() as u64);
    out.extend(s);
    out
}

/// A literal field with incremental indexing and a new name (it enters the dynamic table).
fn insert(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x40];
    out.extend(hpack_str(name));
    out.extend(hpack_str(value));
    out
}

/// A literal field without indexing, name from static table entry `index`.
fn literal(index: u64, value: &[u8]) -> Vec<u8> {
    let mut out = hpack_int(0, 4, index);
    out.extend(hpack_str(value));
    out
}

fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    block.extend(literal(4, path.as_bytes()));
    block.extend(literal(1, b"hostile.test"));
    block
}

/// What one hostile connection sends, client then server.
struct Script {
    name: &'static str,
    client: Vec<u8>,
    server: Vec<u8>,
}

fn start(settings_pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(settings(settings_pairs));
    out
}

fn scripts() -> Vec<Script> {
    let mut seed = 0x0068_3273_u64;
    let mut out = Vec::new();

    // HPACK bomb: one large entry, then thousands of one-byte references to it.
    let mut bomb = insert(b"x-bomb", &[b'a'; 4000]);
    bomb.extend(std::iter::repeat_n(0xbe, 12_000));
    let mut client = start(&[]);
    let mut block = get_block("/bomb");
    block.extend(&bomb);
    client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    let mut server = settings(&[]);
    let mut block = vec![0x88]; // :status 200
    block.extend(&bomb);
    server.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    out.push(Script {
        name: "hpack bomb",
        client,
        server,
    });

    // CONTINUATION flood: a header block that never ends.
    let flood = |first: Vec<u8>| {
        let mut bytes = frame(HEADERS, 0, 1, &first);
        let refs = vec![0xbe; 16_000];
        for _ in 0..300 {
            bytes.extend(frame(CONTINUATION, 0, 1, &refs));
        }
        bytes
    };
    let mut client = start(&[]);
    let mut first = get_block("/flood");
    first.extend(insert(b"x-flood", &[b'f'; 3000]));
    client.extend(flood(first));
    let mut server = settings(&[]);
    let mut first = vec![0x88];
    first.extend(insert(b"x-flood", &[b'f'; 3000]));
    server.extend(flood(first));
    out.push(Script {
        name: "continuation flood",
        client,
        server,
    });

    // Invalid indexes, an impossible string length, a bad Huffman string.
    let mut client = start(&[]);
    let bad_blocks: [Vec<u8>; 5] = [
        vec![0x80],                    // index 0
        hpack_int(0x80, 7, 62 + 1000), // dynamic index into an empty table
        hpack_int(0x80, 7, u64::from(u32::MAX) * 16),
        [vec![0x40, 0x7f], hpack_int(0, 7, 1 << 28)[1..].to_vec()].concat(), // 256 MiB name
        vec![0x40, 0x81, 0xff, 0x81, 0xff], // Huffman: EOS inside a string
    ];
    for (i, bad) in bad_blocks.iter().enumerate() {
        let mut block = get_block(&format!("/bad{i}"));
        block.extend(bad);
        client.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1 + 2 * i as u32,
            &block,
        ));
    }
    let mut server = settings(&[]);
    for (i, bad) in bad_blocks.iter().enumerate() {
        let mut block = vec![0x88];
        block.extend(bad);
        server.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1 + 2 * i as u32,
            &block,
        ));
    }
    out.push(Script {
        name: "invalid indexes",
        client,
        server,
    });

    // Huge SETTINGS, then a table-size update to match and big entries inserted.
    let huge = [
        (1, u32::MAX),
        (3, u32::MAX),
        (4, 0x7fff_ffff),
        (5, 0xff_ffff),
        (6, u32::MAX),
    ];
    let mut client = start(&huge);
    let mut server = settings(&huge);
    for i in 0..200u32 {
        let mut block = if i == 0 {
            hpack_int(0x20, 5, u64::from(u32::MAX))
        } else {
            Vec::new()
        };
        block.extend(get_block(&format!("/huge{i}")));
        block.extend(insert(format!("x-big-{i}").as_bytes(), &[b'h'; 15_000]));
        client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, &block));
        server.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1 + 2 * i,
            &block[..],
        ));
    }
    out.push(Script {
        name: "huge settings",
        client,
        server,
    });

    // Random bytes, then random frames with well-formed frame headers, after a valid preface.
    let mut client = start(&[]);
    client.extend(garbage(&mut seed, 64 * 1024));
    let mut server = settings(&[]);
    server.extend(garbage(&mut seed, 64 * 1024));
    out.push(Script {
        name: "random bytes",
        client,
        server,
    });
    let random_frames = |seed: &mut u64| {
        let mut bytes = Vec::new();
        for _ in 0..400 {
            let head = garbage(seed, 6);
            let len = usize::from(head[0]) * 8;
            bytes.extend(frame(
                head[1] % 12,
                head[2],
                u32::from_be_bytes([0, head[3] & 1, head[4], head[5]]),
                &garbage(seed, len),
            ));
        }
        bytes
    };
    let mut client = start(&[]);
    client.extend(random_frames(&mut seed));
    let mut server = settings(&[]);
    server.extend(random_frames(&mut seed));
    out.push(Script {
        name: "random frames",
        client,
        server,
    });
    out
}

/// Streams reset mid-body, around one good exchange on stream 3 (id `rs3`): the reset
/// streams are never paired with it.
fn reset_script() -> Script {
    let mut client = start(&[]);
    let mut post = vec![0x83, 0x86]; // :method POST, :scheme http
    post.extend(literal(4, b"/upload?id=rs1"));
    post.extend(literal(1, b"hostile.test"));
    client.extend(frame(HEADERS, END_HEADERS, 1, &post));
    client.extend(frame(DATA, 0, 1, &[b'b'; 1000]));
    client.extend(frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()));
    let get = get_block("/after-reset?id=rs3");
    client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &get));
    let mut server = settings(&[]);
    let mut head = vec![0x88];
    head.extend(literal(31, b"text/plain"));
    server.extend(frame(HEADERS, END_HEADERS, 5, &[0x88])); // a stream nobody opened
    server.extend(frame(HEADERS, END_HEADERS, 3, &head));
    server.extend(frame(DATA, 0, 3, b"good "));
    server.extend(frame(RST_STREAM, 0, 5, &8u32.to_be_bytes()));
    server.extend(frame(DATA, END_STREAM, 3, b"body"));
    Script {
        name: "streams reset mid-body",
        client,
        server,
    }
}

/// Runs `script` over one loopback connection to `listener`: the client sends its bytes and
/// half-closes, the server reads everything, then sends its bytes and closes.
fn play(listener: &TcpListener, script: &Script) {
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let server_bytes = script.server.clone();
    let serve = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = server.read_to_end(&mut sink);
        let _ = server.write_all(&server_bytes);
        sink.len()
    });
    let _ = client.write_all(&script.client);
    let _ = client.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = client.read_to_end(&mut reply);
    let read = serve.join().unwrap();
    assert_eq!(
        read,
        script.client.len(),
        "{}: server read all",
        script.name
    );
    assert_eq!(
        reply.len(),
        script.server.len(),
        "{}: client read all",
        script.name
    );
}

#[apply(root_test!)]
fn hostile_h2_is_survived_and_good_traffic_still_exact() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hostile_port = listener.local_addr().unwrap().port();
    let good = Nghttpd::start(None);
    let mut profiler = Profiler::start(&[hostile_port, good.port], &[]);
    for script in scripts() {
        play(&listener, &script);
        assert_bounded(&mut profiler.proc, MAX_RSS_MIB, script.name);
    }
    play(&listener, &reset_script());
    let base = format!("http://127.0.0.1:{}", good.port);
    let (multiplexed, alone) = (ids("good", 16), ids("alone", 4));
    let urls = page_urls(&base, &multiplexed);
    assert_eq!(urls.chunks(8).map(|u| nghttp(u, None)).sum::<usize>(), 16);
    assert_eq!(curl_h2c_each(&page_urls(&base, &alone)), 4);
    assert_bounded(&mut profiler.proc, MAX_RSS_MIB, "all hostile traffic");
    let (records, _) = stop(profiler);

    // Good traffic afterwards: exact, both sides.
    for (client, sent) in [("nghttp", &multiplexed), ("curl", &alone)] {
        let paired = assert_h2_side(&records, "client", client, sent);
        note(
            &format!("after hostile h2: {client} side"),
            sent.len(),
            paired,
        );
    }
    let all = [multiplexed, alone].concat();
    let paired = assert_h2_side(&records, "server", "nghttpd", &all);
    note("after hostile h2: nghttpd side", all.len(), paired);
    // The reset streams: the good exchange on stream 3 is paired with its own response, the
    // reset ones with nothing.
    let hostile: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["dst"]
                .as_str()
                .unwrap_or("")
                .ends_with(&format!(":{hostile_port}"))
                || r["src"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with(&format!(":{hostile_port}"))
        })
        .collect();
    for role in ["client", "server"] {
        let rs3: Vec<&&Value> = hostile
            .iter()
            .filter(|r| {
                r["role"] == role && r["kind"] == "response" && r["url"] == "/after-reset?id=rs3"
            })
            .collect();
        assert_eq!(
            rs3.len(),
            1,
            "{role}: the exchange after the resets: {hostile:#?}"
        );
        assert_eq!(rs3[0]["stream"], 3, "{}", rs3[0]);
        assert_eq!(rs3[0]["status"], 200, "{}", rs3[0]);
        assert_eq!(rs3[0]["body"], "good body", "{}", rs3[0]);
        let rs1: Vec<&&Value> = hostile
            .iter()
            .filter(|r| r["role"] == role && r["url"] == "/upload?id=rs1")
            .collect();
        assert_eq!(rs1.len(), 1, "{role}: the request reset mid-body: {rs1:?}");
        assert_eq!(rs1[0]["reset_code"], 8, "{}", rs1[0]);
        // No other response on that connection is paired: none to the reset stream 1, and the
        // HEADERS on stream 5 that nobody opened are logged unpaired, if at all.
        let conn = &rs3[0]["conn"];
        for r in hostile
            .iter()
            .filter(|r| r["role"] == role && r["conn"] == *conn)
        {
            assert!(
                r["kind"] == "request" || r["stream"] == 3 || r["exchange"].is_null(),
                "paired on a reset or unopened stream: {r}"
            );
        }
    }
    let paired: Vec<Value> = hostile.iter().map(|r| (*r).clone()).collect();
    assert_pairing_exact(&paired);
}
