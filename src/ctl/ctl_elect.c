/*
 * ctl_elect: the candidate's state machine (see ctl_elect.h for the
 * diagram and the rules). One function per state; the events every state
 * treats alike (session flags, redis health, action results that only set
 * flags, retries) are handled first, in note() and results().
 */
#include "ctl_elect.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_doc.h"

static const char *const state_names[ELECT_NSTATES] = {
    [ELECT_IDLE] = "IDLE",
    [ELECT_COUNTING] = "COUNTING",
    [ELECT_FOLLOWER] = "FOLLOWER",
    [ELECT_PROMOTING] = "PROMOTING",
    [ELECT_ACKING] = "ACKING",
    [ELECT_LEADER] = "LEADER",
    [ELECT_FENCED] = "FENCED",
    [ELECT_DEMOTED] = "DEMOTED",
    [ELECT_ABDICATING] = "ABDICATING",
    [ELECT_DONE] = "DONE",
};

static const char *const action_names[ELECT_NACTIONS] = {
    "PAUSE", "UNACK", "WITHDRAW", "CLOSE", "DEMOTE", "OPEN", "CAST", "COUNT", "PROMOTE",
    "ACK", "FOLLOW", "UNPAUSE", "ABDICATE", "EXIT",
};

const char *elect_state_name(enum elect_state s)
{
    return (unsigned)s < ELECT_NSTATES ? state_names[s] : "?";
}

void elect_actions_format(unsigned actions, char *out, size_t outlen)
{
    size_t n = 0;

    if (outlen == 0)
        return;
    out[0] = '\0';
    for (int i = 0; i < ELECT_NACTIONS; i++) {
        if (actions & (1u << i))
            n += (size_t)snprintf(out + n, n < outlen ? outlen - n : 0, "%s%s", n ? "|" : "",
                                  action_names[i]);
        if (n >= outlen)
            return;
    }
    if (n == 0)
        snprintf(out, outlen, "-");
}

void elect_init(struct elect *e, const char *advertise)
{
    memset(e, 0, sizeof(*e));
    e->state = ELECT_IDLE;
    snprintf(e->advertise, sizeof(e->advertise), "%s", advertise);
}

int elect_same_addr(const char *a, const char *b)
{
    return a[0] != '\0' && b[0] != '\0' && ctl_doc_same_node(a, b);
}

int elect_margin_ms(int timeout_ms)
{
    return timeout_ms / 10 > 100 ? timeout_ms / 10 : 100;
}

uint64_t elect_deadline(uint64_t now_ms, uint64_t contact_ms, int timeout_ms)
{
    uint64_t t = timeout_ms > 0 ? (uint64_t)timeout_ms : 0;
    uint64_t a = now_ms + t / 3, b = contact_ms > 0 ? contact_ms + t : 0;
    uint64_t d = a > b ? a : b;
    uint64_t margin = (uint64_t)elect_margin_ms(timeout_ms);

    /* never in the past: a deadline already gone means "now" */
    return d > now_ms + margin ? d - margin : now_ms;
}

const char *elect_demote_target(const struct elect *e)
{
    if (e->leader[0] != '\0' && !elect_same_addr(e->leader, e->advertise))
        return e->leader;
    return e->successor;
}

/* ---- ballots ------------------------------------------------------------- */

int elect_ballot_seq(const char *name, int64_t *seq)
{
    size_t plen = strlen(ELECT_BALLOT_PREFIX), n = strlen(name), d = n;
    int64_t v = 0;

    if (strncmp(name, ELECT_BALLOT_PREFIX, plen) != 0)
        return -1;
    while (d > plen && isdigit((unsigned char)name[d - 1]))
        d--;
    /* the gem takes the trailing digits; ZooKeeper writes ten, which fit */
    if (d == n || n - d > 18)
        return -1;
    for (size_t i = d; i < n; i++)
        v = v * 10 + (name[i] - '0');
    *seq = v;
    return 0;
}

static int ballot_cmp(const void *pa, const void *pb)
{
    const struct elect_ballot *a = pa, *b = pb;

    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return strcmp(a->name, b->name);
}

void elect_view_sort(struct elect_view *v, int64_t session)
{
    qsort(v->ballots, (size_t)v->nballots, sizeof(v->ballots[0]), ballot_cmp);
    v->mine = -1;
    /* the lowest of ours (a lost create may have left two) */
    for (int i = v->nballots - 1; i >= 0; i--) {
        if (session != 0 && v->ballots[i].owner == session)
            v->mine = i;
    }
}

/* ---- transitions --------------------------------------------------------- */

static void to(struct elect *e, enum elect_state s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Enter s, saying why. */
static void to(struct elect *e, enum elect_state s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(e->why, sizeof(e->why), fmt, ap);
    va_end(ap);
    e->state = s;
}

static void retry(struct elect *e, const struct elect_event *ev, unsigned actions, int after_ms)
{
    e->retry_actions |= actions;
    e->retry_ms = ev->now_ms + (uint64_t)after_ms;
}

/* A new session is opened: nothing of the old one is ours any more. */
static unsigned open_session(struct elect *e)
{
    e->connected = 0;
    e->session = 0;
    e->have_ballot = 0;
    e->promoted = 0;
    e->retry_actions = 0;
    e->retry_ms = 0;
    return ELECT_DO_OPEN;
}

static unsigned finish(struct elect *e, int code, const char *why)
{
    unsigned a = ELECT_DO_CLOSE | ELECT_DO_EXIT;

    /* a paused redis that is not ours to lead: demote it before leaving,
     * or the pause lapses with it a master */
    if (e->paused)
        a |= ELECT_DO_DEMOTE;
    e->exit_code = code;
    to(e, ELECT_DONE, "%s", why);
    return a;
}

/* Stand if we can: session connected, redis up. */
static unsigned stand(struct elect *e)
{
    if (!e->connected)
        return 0;
    if (e->have_ballot && !e->redis_up) {
        to(e, ELECT_IDLE, "our redis is down: withdrawing the ballot left from before");
        return ELECT_DO_WITHDRAW;
    }
    if (!e->redis_up)
        return 0;
    to(e, ELECT_COUNTING, e->have_ballot ? "reading the election"
                                        : "session up, redis up: casting a ballot");
    return e->have_ballot ? ELECT_DO_COUNT : ELECT_DO_CAST;
}

/* Our redis is down: not a candidate any more. */
static unsigned stand_down(struct elect *e)
{
    if (!e->have_ballot) {
        to(e, ELECT_IDLE, "our redis is down: not standing");
        return 0;
    }
    to(e, ELECT_IDLE, "our redis is down: withdrawing our ballot");
    return ELECT_DO_WITHDRAW;
}

/* Leader (or about to be) whose redis died: leave at once, so every proxy
 * gates now rather than after a session timeout. */
static unsigned resign(struct elect *e, const char *why)
{
    e->leader[0] = '\0';
    to(e, ELECT_IDLE, "%s: giving the leadership up (delete leader_ack, close the session)",
       why);
    return ELECT_DO_UNACK | ELECT_DO_CLOSE | open_session(e);
}

/* Leader that lost its connection: pause now, demote at the deadline. */
static unsigned fence(struct elect *e, const struct elect_event *ev)
{
    e->paused = 1;
    e->deadline_ms = elect_deadline(ev->now_ms, ev->contact_ms, e->timeout_ms);
    to(e, ELECT_FENCED, "ZooKeeper connection lost: writes paused; demoting in %d ms unless "
       "the session comes back", (int)(e->deadline_ms - ev->now_ms));
    return ELECT_DO_PAUSE;
}

/* Leadership lost with the session: keep writes paused, demote, and come
 * back as a follower with a new session. */
static unsigned lost_leadership(struct elect *e, const char *why)
{
    unsigned a = e->paused ? 0 : ELECT_DO_PAUSE;

    e->paused = 1;
    e->leader[0] = '\0';
    to(e, ELECT_IDLE, "%s: leadership lost; writes paused, demoting, new session", why);
    return a | ELECT_DO_DEMOTE | open_session(e);
}

/* Follow the ack, unless it names us (a ballot of our previous process,
 * whose session has not expired yet: our redis is the master it names). */
static unsigned follow(struct elect *e)
{
    if (e->leader[0] == '\0' || elect_same_addr(e->leader, e->advertise))
        return 0;
    if (elect_same_addr(e->leader, e->following) && !e->paused)
        return 0;
    return ELECT_DO_FOLLOW;
}

/* The lowest ballot is ours. */
static unsigned decide_lowest(struct elect *e, const struct elect_view *v, int ack_ours)
{
    if (v->ack_exists && !ack_ours) {
        /* someone else's ack, with no lower ballot: its session is ending
         * (or a foreign candidate); never promote beside it */
        to(e, ELECT_FOLLOWER, "lowest ballot, but leader_ack still names %s: waiting for it to go",
           e->leader);
        return follow(e);
    }
    if (ack_ours) {
        unsigned a = e->paused ? ELECT_DO_UNPAUSE : 0;

        if (e->state != ELECT_LEADER)
            to(e, ELECT_LEADER, "leader_ack is ours%s", a ? ": writes resumed" : "");
        e->promoted = 0;
        return a;
    }
    if (!e->redis_up)
        return stand_down(e);
    if (e->promoted) {
        to(e, ELECT_ACKING, "lowest ballot, redis already master: acknowledging");
        return ELECT_DO_ACK;
    }
    to(e, ELECT_PROMOTING, "%s is the lowest ballot: fencing, comparing, promoting",
       v->ballots[v->mine].name);
    return ELECT_DO_PROMOTE;
}

/* What a fresh reading of the election means for us. */
static unsigned decide(struct elect *e, const struct elect_view *v)
{
    int ack_ours;

    if (v->mine < 0) {
        e->have_ballot = 0;
        to(e, ELECT_COUNTING, "our ballot is not there: casting one");
        return e->redis_up ? ELECT_DO_CAST : stand_down(e);
    }
    e->have_ballot = 1;
    snprintf(e->successor, sizeof(e->successor), "%s",
             v->mine + 1 < v->nballots ? v->ballots[v->mine + 1].addr : "");
    ack_ours = v->ack_exists && e->session != 0 && v->ack_owner == e->session;
    snprintf(e->leader, sizeof(e->leader), "%s", v->ack_exists ? v->ack_addr : "");
    if (e->leader[0] != '\0' && !elect_same_addr(e->leader, e->advertise))
        snprintf(e->stale, sizeof(e->stale), "%s", e->leader);
    if (v->mine == 0)
        return decide_lowest(e, v, ack_ours);
    e->promoted = 0;                 /* not the lowest: nothing of ours to acknowledge */
    to(e, ELECT_FOLLOWER, "%s is below our %s; leader: %s", v->ballots[v->mine - 1].name,
       v->ballots[v->mine].name, e->leader[0] ? e->leader : "none yet (no leader_ack)");
    return follow(e);
}

/* ---- events every state treats alike --------------------------------------- */

/* Flags from session and health events; a due retry. */
static unsigned note(struct elect *e, const struct elect_event *ev)
{
    unsigned a = 0;

    switch (ev->type) {
    case ELECT_EV_CONNECTED:
        e->connected = 1;
        e->session = ev->session;
        e->timeout_ms = ev->timeout_ms;
        break;
    case ELECT_EV_DISCONNECTED:
    case ELECT_EV_EXPIRED:
        e->connected = 0;
        break;
    case ELECT_EV_REDIS_UP:
        e->redis_up = 1;
        break;
    case ELECT_EV_REDIS_DOWN:
    case ELECT_EV_CHILD_EXIT:
        e->redis_up = 0;
        break;
    case ELECT_EV_TICK:
        if (e->retry_ms != 0 && ev->now_ms >= e->retry_ms) {
            a = e->retry_actions;
            e->retry_actions = 0;
            e->retry_ms = 0;
        }
        break;
    default:
        break;
    }
    return a;
}

/* Results that only set flags, whatever the state. 1 when handled. */
static int result_flags(struct elect *e, const struct elect_event *ev)
{
    switch (ev->action) {
    case ELECT_DO_OPEN:
        if (!ev->ok)
            retry(e, ev, ELECT_DO_OPEN, ELECT_RETRY_MS);
        return 1;
    case ELECT_DO_CLOSE:
        e->connected = 0;
        e->session = 0;
        e->have_ballot = 0;
        return 1;
    case ELECT_DO_WITHDRAW:
        if (ev->ok)
            e->have_ballot = 0;
        return 1;
    case ELECT_DO_PAUSE:
    case ELECT_DO_UNACK:
        return 1;                    /* PAUSE is kept up by the loop while paused */
    case ELECT_DO_UNPAUSE:
        if (ev->ok)
            e->paused = 0;
        return 1;
    case ELECT_DO_DEMOTE:
        if (ev->ok) {
            e->paused = 0;
            snprintf(e->following, sizeof(e->following), "%s", elect_demote_target(e));
        } else {
            /* the successor lacked our writes (it catches up now that we
             * are paused), or could not be reached: writes stay paused,
             * and the demotion, which outlives us, is tried again */
            retry(e, ev, ELECT_DO_DEMOTE, ELECT_DEMOTE_RETRY_MS);
        }
        return 1;
    case ELECT_DO_FOLLOW:
        if (ev->ok) {
            e->paused = 0;
            snprintf(e->following, sizeof(e->following), "%s", e->leader);
        } else {
            retry(e, ev, ELECT_DO_FOLLOW, ELECT_RETRY_MS);
        }
        return 1;
    default:
        break;
    }
    return 0;
}

/* A ZooKeeper step that failed: a lost session is waited for (its events
 * follow); anything else is tried again later. */
static unsigned zk_failed(struct elect *e, const struct elect_event *ev)
{
    if (!ev->lost)
        retry(e, ev, ev->action, ELECT_RETRY_MS);
    return 0;
}

/* ---- per state ------------------------------------------------------------- */

static unsigned on_idle(struct elect *e, const struct elect_event *ev)
{
    switch (ev->type) {
    case ELECT_EV_START:
        to(e, ELECT_IDLE, "starting: opening a session");
        return open_session(e);
    case ELECT_EV_CONNECTED:
    case ELECT_EV_REDIS_UP:
        return stand(e);
    case ELECT_EV_EXPIRED:
        to(e, ELECT_IDLE, "session expired: opening a new one");
        return open_session(e);
    case ELECT_EV_TERM:
        return finish(e, 0, "stopping");
    case ELECT_EV_CHILD_EXIT:
        return finish(e, ev->exit_code, "the redis-server we started exited");
    case ELECT_EV_RESULT:
        if (ev->action == ELECT_DO_WITHDRAW && !ev->ok && !ev->lost)
            return zk_failed(e, ev);
        return 0;
    default:
        return 0;
    }
}

/* COUNTING and FOLLOWER: a ballot is (being) cast. */
static unsigned on_standing(struct elect *e, const struct elect_event *ev)
{
    switch (ev->type) {
    case ELECT_EV_CONNECTED:
        return stand(e);
    case ELECT_EV_CHANGED:
        return e->connected ? ELECT_DO_COUNT : 0;
    case ELECT_EV_EXPIRED:
        to(e, ELECT_IDLE, "session expired: opening a new one");
        return open_session(e);
    case ELECT_EV_REDIS_DOWN:
        return stand_down(e);
    case ELECT_EV_TERM:
        return finish(e, 0, "stopping: closing the session (our ballot goes with it)");
    case ELECT_EV_CHILD_EXIT:
        return finish(e, ev->exit_code, "the redis-server we started exited");
    case ELECT_EV_RESULT:
        if (ev->action == ELECT_DO_CAST) {
            if (!ev->ok)
                return zk_failed(e, ev);
            e->have_ballot = 1;
            return ELECT_DO_COUNT;
        }
        if (ev->action == ELECT_DO_COUNT)
            return ev->ok ? decide(e, ev->view) : zk_failed(e, ev);
        return 0;
    default:
        return 0;
    }
}

static unsigned on_promoting(struct elect *e, const struct elect_event *ev)
{
    if (ev->type == ELECT_EV_RESULT && ev->action == ELECT_DO_PROMOTE) {
        if (ev->ok) {
            e->promoted = 1;
            e->paused = 0;           /* the promotion resumes our writes */
            if (!e->connected)
                return fence(e, ev);
            to(e, ELECT_ACKING, "our redis is master: creating leader_ack");
            return ELECT_DO_ACK;
        }
        to(e, ELECT_COUNTING, "%s: giving the election away, re-voting",
           ev->yield ? "another server is ahead" : "promotion failed");
        e->have_ballot = 0;
        retry(e, ev, ELECT_DO_CAST, ELECT_YIELD_DELAY_MS);
        return ELECT_DO_WITHDRAW;
    }
    /* the promotion runs to its end before anything else is looked at */
    return on_standing(e, ev);
}

/* ACKING, LEADER, FENCED: our redis is (being made) the master. */
static unsigned on_master(struct elect *e, const struct elect_event *ev)
{
    switch (ev->type) {
    case ELECT_EV_DISCONNECTED:
        return e->state == ELECT_FENCED ? 0 : fence(e, ev);
    case ELECT_EV_CONNECTED:
        return ELECT_DO_COUNT;       /* same session: still ours? */
    case ELECT_EV_CHANGED:
        return e->connected ? ELECT_DO_COUNT : 0;
    case ELECT_EV_EXPIRED:
        return lost_leadership(e, "session expired");
    case ELECT_EV_REDIS_DOWN:
        return resign(e, "our redis is down");
    case ELECT_EV_TICK:
        if (e->state == ELECT_FENCED && ev->now_ms >= e->deadline_ms) {
            to(e, ELECT_DEMOTED, "own timer: the session may be gone; demoting our redis");
            return ELECT_DO_DEMOTE;
        }
        return 0;
    case ELECT_EV_TERM:
        if (e->state == ELECT_FENCED)
            return finish(e, 0, "stopping while cut from ZooKeeper: demoting");
        to(e, ELECT_ABDICATING, "stopping: handing the leadership over");
        return ELECT_DO_ABDICATE;
    case ELECT_EV_CHILD_EXIT:
        e->exit_code = ev->exit_code;
        to(e, ELECT_DONE, "the redis-server we started exited: giving the leadership up");
        return ELECT_DO_UNACK | ELECT_DO_CLOSE | ELECT_DO_EXIT;
    case ELECT_EV_RESULT:
        break;
    default:
        return 0;
    }
    if (ev->action == ELECT_DO_ACK) {
        if (ev->ok) {
            unsigned a = e->paused ? ELECT_DO_UNPAUSE : 0;

            e->promoted = 0;
            snprintf(e->leader, sizeof(e->leader), "%s", e->advertise);
            to(e, ELECT_LEADER, "leader_ack created: the proxies send here");
            return a;
        }
        if (ev->lost)
            return e->connected || e->state == ELECT_FENCED ? 0 : fence(e, ev);
        /* someone else's ack is there: no writes here until it is gone */
        e->paused = 1;
        to(e, ELECT_COUNTING, "leader_ack exists and is not ours: writes paused, re-reading");
        return ELECT_DO_PAUSE | ELECT_DO_COUNT;
    }
    if (ev->action == ELECT_DO_COUNT) {
        if (!ev->ok)
            return zk_failed(e, ev);
        return decide(e, ev->view);
    }
    return 0;
}

static unsigned on_demoted(struct elect *e, const struct elect_event *ev)
{
    switch (ev->type) {
    case ELECT_EV_CONNECTED:
        /* the session survived after all, but our redis is a replica now:
         * give the leadership up and come back as a follower */
        return resign(e, "reconnected after demoting");
    case ELECT_EV_EXPIRED:
        to(e, ELECT_IDLE, "session expired (as our timer said): opening a new one");
        return open_session(e);
    case ELECT_EV_TERM:
        return finish(e, 0, "stopping");
    case ELECT_EV_CHILD_EXIT:
        return finish(e, ev->exit_code, "the redis-server we started exited");
    default:
        return 0;
    }
}

static unsigned on_abdicating(struct elect *e, const struct elect_event *ev)
{
    if (ev->type == ELECT_EV_RESULT && ev->action == ELECT_DO_ABDICATE) {
        e->paused = 0;
        e->connected = 0;
        e->exit_code = 0;
        to(e, ELECT_DONE, "%s", ev->ok ? "handed over" : "handover incomplete (see above)");
        return ELECT_DO_EXIT;
    }
    return 0;
}

static unsigned dispatch(struct elect *e, const struct elect_event *ev)
{
    if (ev->type == ELECT_EV_RESULT && result_flags(e, ev))
        return 0;
    switch (e->state) {
    case ELECT_IDLE:
        return on_idle(e, ev);
    case ELECT_COUNTING:
    case ELECT_FOLLOWER:
        return on_standing(e, ev);
    case ELECT_PROMOTING:
        return on_promoting(e, ev);
    case ELECT_ACKING:
    case ELECT_LEADER:
    case ELECT_FENCED:
        return on_master(e, ev);
    case ELECT_DEMOTED:
        return on_demoted(e, ev);
    case ELECT_ABDICATING:
        return on_abdicating(e, ev);
    case ELECT_DONE:
        break;
    }
    return 0;
}

unsigned elect_step(struct elect *e, const struct elect_event *ev)
{
    unsigned a;

    if (e->state == ELECT_DONE)
        return 0;
    a = note(e, ev);
    a |= dispatch(e, ev);
    if (e->state == ELECT_DONE)
        a &= ELECT_DO_PAUSE | ELECT_DO_UNACK | ELECT_DO_CLOSE | ELECT_DO_DEMOTE | ELECT_DO_EXIT;
    /* one ballot per session: a second one (a retry meeting a ballot cast
     * meanwhile) could end up below ours and wait for itself for ever */
    if (e->have_ballot || !e->connected)
        a &= ~ELECT_DO_CAST;
    /* ZooKeeper steps need the session; the session events bring them back */
    if (!e->connected)
        a &= ~(ELECT_DO_COUNT | ELECT_DO_ACK);
    /* demoting is for a redis we keep paused; once it follows, never */
    if (!e->paused)
        a &= ~ELECT_DO_DEMOTE;
    return a;
}
