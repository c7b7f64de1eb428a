/*
 * exec_mqtt.h — the "mqtt" executor's counters. Its operations are cp_exec_mqtt_ops
 * (cp_exec.h); exec_mqtt.c opens with the design (sessions, completion rules, limits).
 */
#ifndef EXEC_MQTT_H
#define EXEC_MQTT_H

#include <stdbool.h>
#include <stdint.h>

#include "cp_exec.h"

#define CP_MQTT_ERROR_MAX 128u

/** What one mqtt executor did since init. Counts only grow. */
struct cp_mqtt_stats {
    bool connected;             /* a session is up (CONNACK accepted) */
    uint64_t connects;          /* CONNACKs accepted */
    uint64_t connect_failures;  /* connections that ended before a CONNACK was accepted */
    uint64_t disconnects;       /* sessions that ended after their CONNACK */
    uint64_t published;         /* PUBLISHes handed to libmosquitto */
    uint64_t acked;             /* PUBACKs that completed an attempt */
    uint64_t acks_ignored;      /* PUBACKs of attempts abandoned or already ended */
    uint64_t replies;           /* replies that ended an attempt */
    uint64_t replies_ignored;   /* well-formed replies matching no attempt (late, abandoned) */
    uint64_t replies_malformed; /* messages on the reply filter without a usable key */
    uint64_t subscribe_refused; /* reply subscriptions the broker refused (SUBACK 0x80) */
    uint64_t abandoned;         /* attempts the dispatcher abandoned */
    char last_error[CP_MQTT_ERROR_MAX]; /* why the last connection ended; "" when none did */
};

/** Copy the counters of x, an mqtt executor between init and fini. Can't fail. */
void cp_exec_mqtt_stats(const struct cp_executor *x, struct cp_mqtt_stats *out);

#endif
