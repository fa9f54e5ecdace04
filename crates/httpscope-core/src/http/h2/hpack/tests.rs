//! RFC 7541 Appendix C, late joins, losses and hostile blocks.
#![allow(clippy::unwrap_used)]

use super::*;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn pairs(fields: &Fields) -> Vec<(&str, &str)> {
    fields.fields.iter().map(|(n, v)| (&**n, &**v)).collect()
}

const C3: [&str; 3] = [
    "828684410f7777772e6578616d706c652e636f6d",
    "828684be58086e6f2d6361636865",
    "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
];
const C4: [&str; 3] = [
    "828684418cf1e3c2e5f23a6ba0ab90f4ff",
    "828684be5886a8eb10649cbf",
    "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
];

#[test]
fn appendix_c3_and_c4_requests() {
    for blocks in [C3, C4] {
        let mut d = Decoder::new(true, 64 * 1024);
        let first = d.decode(&hex(blocks[0])).unwrap();
        assert_eq!(
            pairs(&first),
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ]
        );
        let second = d.decode(&hex(blocks[1])).unwrap();
        assert_eq!(pairs(&second)[4], ("cache-control", "no-cache"));
        let third = d.decode(&hex(blocks[2])).unwrap();
        assert_eq!(
            pairs(&third),
            [
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ]
        );
        assert_eq!(d.table.len(), 3);
        assert_eq!(third.unknown, 0);
    }
}

#[test]
fn appendix_c5_responses_evict() {
    let mut d = Decoder::new(true, 64 * 1024);
    d.table.set_max_size(256);
    let blocks = [
        "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
        "4803333037c1c0bf",
        "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
    ];
    let first = d.decode(&hex(blocks[0])).unwrap();
    assert_eq!(pairs(&first)[0], (":status", "302"));
    assert_eq!(pairs(&first)[3], ("location", "https://www.example.com"));
    let second = d.decode(&hex(blocks[1])).unwrap();
    assert_eq!(
        pairs(&second),
        [
            (":status", "307"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com")
        ]
    );
    let third = d.decode(&hex(blocks[2])).unwrap();
    assert_eq!(
        pairs(&third),
        [
            (":status", "200"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ("location", "https://www.example.com"),
            ("content-encoding", "gzip"),
            (
                "set-cookie",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
            )
        ]
    );
    assert_eq!(d.table.len(), 3, "evictions follow the 256-octet table");
}

#[test]
fn late_join_resolves_what_it_saw_and_flags_the_rest() {
    // Joined after the first request: its :authority entry was never seen.
    let mut d = Decoder::new(false, 64 * 1024);
    let second = d.decode(&hex(C3[1])).unwrap();
    assert_eq!(second.unknown, 1);
    assert_eq!(
        pairs(&second),
        [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("cache-control", "no-cache")
        ]
    );
    let third = d.decode(&hex(C3[2])).unwrap();
    // bf is now the unseen :authority entry, one position further down: still unknown.
    assert_eq!(third.unknown, 1);
    assert_eq!(pairs(&third)[3], ("custom-key", "custom-value"));
    // A later reference to the entry inserted since joining resolves exactly.
    let again = d.decode(&[0xbe, 0xbf]).unwrap();
    assert_eq!(
        pairs(&again),
        [
            ("custom-key", "custom-value"),
            ("cache-control", "no-cache")
        ]
    );
    assert!(!d.is_complete());
    // A size update to 0 empties the table: everything is known again.
    let reset = d.decode(&[0x20, 0x3f, 0xe1, 0x1f, 0x82]).unwrap();
    assert_eq!(pairs(&reset), [(":method", "GET")]);
    assert!(d.is_complete());
    assert_eq!(d.decode(&[0xbe]), Err(InvalidBlock));
}

#[test]
fn a_literal_with_an_unknown_name_keeps_its_slot() {
    let mut d = Decoder::new(false, 64 * 1024);
    // Literal with incremental indexing, name from unseen index 70, value "v".
    let fields = d.decode(&[0x7f, 0x07, 0x01, b'v', 0xbe]).unwrap();
    assert_eq!(fields.unknown, 2);
    assert!(fields.fields.is_empty());
    // Then a known literal: it sits at 62, the placeholder moves to 63.
    let fields = d
        .decode(&[0x40, 0x01, b'k', 0x01, b'w', 0xbe, 0xbf])
        .unwrap();
    assert_eq!(pairs(&fields), [("k", "w"), ("k", "w")]);
    assert_eq!(fields.unknown, 1);
}

#[test]
fn losing_track_forgets_entries() {
    let mut d = Decoder::new(true, 64 * 1024);
    d.decode(&hex(C3[0])).unwrap();
    d.lose_track();
    let fields = d.decode(&[0xbe]).unwrap();
    assert_eq!((fields.unknown, fields.fields.len()), (1, 0));
}

#[test]
fn hostile_blocks_fail_or_stay_bounded() {
    let mut d = Decoder::new(true, 4096);
    for bad in [
        &[0xc0][..], // empty dynamic table (checked first: errors
        // make the table incomplete)
        &[0x80],                               // index 0
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], // integer overflow
        &[0x40, 0x05, b'a'],                   // string longer than the block
        &[0x40, 0x81, 0x00, 0x00],             // bad Huffman padding
        &[0x82, 0x20],                         // size update after a field
    ] {
        assert_eq!(d.decode(bad), Err(InvalidBlock), "{bad:x?}");
    }
    // An HPACK bomb: one big entry referenced over and over.
    let mut d = Decoder::new(true, 16 * 1024);
    let mut bomb = vec![0x40, 0x01, b'x', 0x7f, 0xa1, 0x1e];
    bomb.extend(std::iter::repeat_n(b'a', 4000));
    bomb.extend(std::iter::repeat_n(0xbe, 10_000));
    let fields = d.decode(&bomb).unwrap();
    assert!(fields.fields.len() <= 4);
    assert!(fields.dropped > 9_990);
    // Huge size updates are taken, but the table stays within its cap.
    let mut d = Decoder::new(true, 4096);
    d.decode(&[0x3f, 0xe1, 0xff, 0xff, 0x0f]).unwrap();
    assert!(!d.is_complete());
}
