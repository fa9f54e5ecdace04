/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Words the HTTP/1 framing compares 8 bytes at a time: ASCII as a
 * little-endian __u64, and the masks that go with them. Needs nothing
 * included before it.
 */
#ifndef HTTPSCOPE_WORDS_BPF_H
#define HTTPSCOPE_WORDS_BPF_H

/* "HEAD " and "CONNECT ", little-endian. */
#define WORD_HEAD_ 0x2044414548ULL
#define WORD_CONNECT_ 0x205443454e4e4f43ULL
/* "HTTP/1.", little-endian. */
#define WORD_HTTP1 0x002e312f50545448ULL
/* "content-" and "length:", "transfer" and "-encodin", little-endian. */
#define WORD_CONTENT_ 0x2d746e65746e6f63ULL
#define WORD_LENGTH_ 0x003a6874676e656cULL
#define WORD_TRANSFER 0x726566736e617274ULL
#define WORD_ENCODIN 0x6e69646f636e652dULL
/* "chunked" (7 bytes), little-endian. */
#define WORD_CHUNKED 0x0064656b6e756863ULL

/* Every byte of a word set to 0x01, and to 0x80. */
#define BYTES_01 0x0101010101010101ULL
#define BYTES_80 0x8080808080808080ULL

/* The low 7 bytes of a word. */
#define LOW7 0x00ffffffffffffffULL
/* ASCII letters of a word in lower case (other bytes get bit 5 set). */
#define LOWER8(v) ((v) | 0x2020202020202020ULL)

#endif /* HTTPSCOPE_WORDS_BPF_H */
