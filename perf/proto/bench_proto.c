/*
 * bench_proto — the frame parser alone: sf_datagram_parse (struct sf_event per event) against
 * sf_frame_scan (the receive path's 16-byte spans), 8 events per frame, frames in L1.
 *
 * Before timing it checks, and exits 1 on any mismatch:
 *   - every byte value at every position of type, id and signal names of 1..40 bytes:
 *     sf_frame_scan (SIMD classes) agrees with sf_name_valid_* (the byte table);
 *   - random mutations of valid frames (byte flips, truncation, extension): sf_frame_scan
 *     returns exactly what sf_datagram_parse returns, and the same event views.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "sf_proto.h"

#define BPR_EVENTS_PER_FRAME 8
#define BPR_FRAMES           256 /* distinct frames, cycled: about 40 kB, stays in L2 */
#define BPR_MUTATIONS        200000
#define BPR_NAME_LEN_CHECK   40

struct bpr_frame {
    uint16_t len;
    uint8_t bytes[SF_DATAGRAM_LEN_MAX];
};

static uint64_t bpr_rng = 0x2545f4914f6cdd1dull;

static uint64_t bpr_rand(void)
{
    bpr_rng ^= bpr_rng << 13;
    bpr_rng ^= bpr_rng >> 7;
    bpr_rng ^= bpr_rng << 17;
    return bpr_rng;
}

/* A frame of `events` events with the given name lengths (0: random) and random fields. */
static int bpr_build(uint8_t *out, size_t cap, unsigned events, unsigned type_len, unsigned id_len,
                     unsigned signal_len, uint8_t flags)
{
    static const char ident[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
    struct sf_frame_hdr hdr = { .flags = flags, .sender_id = 7, .frame_seq = bpr_rand() };
    int len = sf_frame_begin(out, cap, &hdr);
    for (unsigned e = 0; e < events && len > 0; e++) {
        char type[SF_TYPE_LEN_MAX], id[SF_ID_LEN_MAX], signal[SF_SIGNAL_LEN_MAX];
        unsigned tl = type_len ? type_len : 1 + (unsigned)(bpr_rand() % SF_TYPE_LEN_MAX);
        unsigned il = id_len ? id_len : 1 + (unsigned)(bpr_rand() % SF_ID_LEN_MAX);
        unsigned sl = signal_len ? signal_len : 1 + (unsigned)(bpr_rand() % SF_SIGNAL_LEN_MAX);
        for (unsigned i = 0; i < tl; i++)
            type[i] = ident[bpr_rand() % (sizeof(ident) - 1)];
        for (unsigned i = 0; i < il; i++)
            id[i] = (char)(0x20 + bpr_rand() % 0x5f); /* printable; '"' and '\\' fixed below */
        for (unsigned i = 0; i < il; i++)
            if (id[i] == '"' || id[i] == '\\')
                id[i] = 'x';
        for (unsigned i = 0; i < sl; i++)
            signal[i] = ident[bpr_rand() % (sizeof(ident) - 1)];
        struct sf_value v[3] = {
            { .type = SF_VAL_INT, .i = (int64_t)(bpr_rand() % 100000) },
            { .type = SF_VAL_FLOAT, .f = 21.5 },
            { .type = SF_VAL_TEXT, .text = { .ptr = "ok", .len = 2 } },
        };
        uint8_t fields[64];
        int fl = sf_fields_encode(fields, sizeof(fields), v, (unsigned)(bpr_rand() % 4));
        struct sf_event ev = { .type = type,
                               .type_len = (uint8_t)tl,
                               .id = id,
                               .id_len = (uint8_t)il,
                               .signal = signal,
                               .signal_len = (uint8_t)sl,
                               .event_id = bpr_rand(),
                               .fields = fields,
                               .fields_len = (uint16_t)(fl > 0 ? fl : 0) };
        len = sf_frame_add_event(out, cap, (size_t)len, &ev);
    }
    return len > 0 ? sf_frame_end(out, cap, (size_t)len) : len;
}

/* sf_frame_scan and sf_datagram_parse agree on buf[0..len). Returns false on a mismatch. */
static bool bpr_agree(const uint8_t *buf, size_t len)
{
    struct sf_frame_hdr h1, h2;
    struct sf_event evs[SF_FRAME_EVENTS_MAX];
    struct sf_event_span spans[SF_FRAME_EVENTS_MAX];
    int n1 = sf_datagram_parse(buf, len, &h1, evs, SF_FRAME_EVENTS_MAX);
    int n2 = sf_frame_scan(buf, len, &h2, spans, SF_FRAME_EVENTS_MAX);
    if (len > 0 && buf[0] == '{')
        return n2 == SF_ERR_BAD_MAGIC;
    if (n1 != n2)
        return false;
    for (int i = 0; i < n1; i++) {
        const struct sf_event *e = &evs[i];
        const struct sf_event_span *s = &spans[i];
        if ((const uint8_t *)e->type - buf != s->type_off || e->type_len != s->type_len ||
            e->id_len != s->id_len || e->signal_len != s->signal_len ||
            e->fields_len != s->fields_len || e->event_id != s->event_id ||
            e->id != e->type + e->type_len || e->signal != e->id + e->id_len)
            return false;
    }
    return n1 <= 0 || (h1.flags == h2.flags && h1.frame_seq == h2.frame_seq);
}

/* Every byte at every position of names of every length up to BPR_NAME_LEN_CHECK. */
static unsigned bpr_check_names(void)
{
    static uint8_t buf[SF_DATAGRAM_LEN_MAX];
    unsigned bad = 0;
    for (unsigned which = 0; which < 3; which++) {
        unsigned max = which == 1 ? BPR_NAME_LEN_CHECK : SF_TYPE_LEN_MAX;
        for (unsigned nl = 1; nl <= max; nl++) {
            unsigned tl = which == 0 ? nl : 5, il = which == 1 ? nl : 9, sl = which == 2 ? nl : 7;
            int len = bpr_build(buf, sizeof(buf), 1, tl, il, sl, 0);
            if (len <= 0)
                return 1;
            size_t name_off =
                SF_FRAME_HDR_LEN + SF_EVENT_HDR_LEN + (which >= 1 ? tl : 0) + (which == 2 ? il : 0);
            for (unsigned pos = 0; pos < nl; pos++) {
                uint8_t saved = buf[name_off + pos];
                for (unsigned b = 0; b < 256; b++) {
                    buf[name_off + pos] = (uint8_t)b;
                    const char *name = (const char *)buf + name_off;
                    bool valid =
                        which == 1 ? sf_name_valid_id(name, nl) : sf_name_valid_type(name, nl);
                    struct sf_frame_hdr h;
                    struct sf_event_span sp[1];
                    int n = sf_frame_scan(buf, (size_t)len, &h, sp, 1);
                    if (n != (valid ? 1 : SF_ERR_BAD_NAME) || !bpr_agree(buf, (size_t)len))
                        bad++;
                }
                buf[name_off + pos] = saved;
            }
        }
    }
    return bad;
}

static unsigned bpr_check_mutations(void)
{
    static uint8_t buf[SF_DATAGRAM_LEN_MAX];
    unsigned bad = 0;
    for (unsigned m = 0; m < BPR_MUTATIONS; m++) {
        int len = bpr_build(buf, sizeof(buf), 1 + (unsigned)(bpr_rand() % 6), 0, 0, 0,
                            (uint8_t)(bpr_rand() % 4 == 0 ? SF_FLAG_AUTH : 0));
        if (len <= 0)
            return bad + 1;
        size_t n = (size_t)len;
        unsigned flips = (unsigned)(bpr_rand() % 3);
        for (unsigned f = 0; f < flips; f++)
            buf[bpr_rand() % n] ^= (uint8_t)(1u << (bpr_rand() % 8));
        switch (bpr_rand() % 4) {
        case 0:
            n -= bpr_rand() % n; /* truncated, possibly to nothing */
            break;
        case 1:
            n += bpr_rand() % 4; /* trailing bytes */
            break;
        default:
            break;
        }
        if (!bpr_agree(buf, n))
            bad++;
    }
    return bad;
}

static void bpr_emit(const char *name, uint64_t events, uint64_t cycles)
{
    struct bench_result r = BENCH_RESULT_INIT(name);
    r.events = events;
    r.cycles_per_event = (double)cycles / (double)events;
    r.events_per_s = bench_tsc_hz() / r.cycles_per_event;
    r.events_per_frame = BPR_EVENTS_PER_FRAME;
    bench_emit(&r);
}

int main(int argc, char **argv)
{
    bool quick = bench_has_flag(argc, argv, "--quick");
    unsigned bad_names = bpr_check_names();
    unsigned bad_mut = bpr_check_mutations();
    if (bad_names || bad_mut) {
        fprintf(stderr, "bench_proto: self-check FAILED: %u name cases, %u mutations disagree\n",
                bad_names, bad_mut);
        return 1;
    }
    fprintf(stderr,
            "bench_proto: self-check ok (names: every byte at every position; %u "
            "mutated frames)\n",
            BPR_MUTATIONS);

    static struct bpr_frame frames[BPR_FRAMES];
    for (unsigned f = 0; f < BPR_FRAMES; f++) {
        /* Names like the pipeline bench's: "device", "dev-NNNNNNNN", "telemetry". */
        int len =
            bpr_build(frames[f].bytes, sizeof(frames[f].bytes), BPR_EVENTS_PER_FRAME, 6, 12, 9, 0);
        if (len <= 0)
            return 1;
        frames[f].len = (uint16_t)len;
    }
    uint64_t rounds = bench_under_valgrind() ? 64 : quick ? 2000 : 20000;
    uint64_t events = rounds * BPR_FRAMES * BPR_EVENTS_PER_FRAME, sink = 0;

    struct sf_frame_hdr hdr;
    static struct sf_event evs[SF_FRAME_EVENTS_MAX];
    bench_region_begin();
    uint64_t t0 = bench_tsc();
    for (uint64_t r = 0; r < rounds; r++)
        for (unsigned f = 0; f < BPR_FRAMES; f++)
            sink += (uint64_t)sf_datagram_parse(frames[f].bytes, frames[f].len, &hdr, evs,
                                                SF_FRAME_EVENTS_MAX);
    uint64_t t1 = bench_tsc();
    bench_region_end();
    bpr_emit("proto_datagram_parse", events, t1 - t0);

    static struct sf_event_span spans[SF_FRAME_EVENTS_MAX];
    bench_region_begin();
    t0 = bench_tsc();
    for (uint64_t r = 0; r < rounds; r++)
        for (unsigned f = 0; f < BPR_FRAMES; f++)
            sink += (uint64_t)sf_frame_scan(frames[f].bytes, frames[f].len, &hdr, spans,
                                            SF_FRAME_EVENTS_MAX);
    t1 = bench_tsc();
    bench_region_end();
    bpr_emit("proto_frame_scan", events, t1 - t0);

    if (sink != 2 * rounds * BPR_FRAMES * BPR_EVENTS_PER_FRAME) {
        fprintf(stderr, "bench_proto: parsers rejected benchmark frames\n");
        return 1;
    }
    return 0;
}
