/*
 * ctl_elect: what an election candidate (`rzproxy-ctl candidate`) decides,
 * as one state machine: an enum of states and one function that takes an
 * event and returns what to do. Pure: no ZooKeeper, no redis, no clock
 * (time comes in the events), so the unit tests drive it with synthetic
 * events. ctl_candidate.c owns the I/O: it turns session events, watches,
 * health checks, signals and timer ticks into events, and carries out the
 * actions, each of which reports back with an ELECT_EV_RESULT.
 *
 * The layout is the zk gem's ZK::Election (DESIGN section 1b): under ROOT,
 * every candidate has an ephemeral-sequential ballot<10 digits> holding its
 * advertised host:port; the lowest wins; each watches the ballot just
 * below its own; the winner makes its redis a master, then creates the
 * ephemeral ROOT/leader_ack with its host:port; the others, once the ack
 * exists, make their redis replicas of the leader.
 *
 *            START                 CONNECTED + redis up: CAST
 *   (none) ───────> IDLE ──────────────────────────────────> COUNTING
 *                    ^  ^                                      │ COUNTED
 *     redis down:    │  │ session expired: OPEN    lower ballot│ lowest
 *     WITHDRAW ──────┘  │                        ┌─────────────┴──────┐
 *                       │                        v                    v
 *                       │                   FOLLOWER            PROMOTING ── YIELD ─> COUNTING
 *                       │                (FOLLOW the ack)             │ PROMOTED: ACK
 *                       │                                             v
 *      redis down:      │                 disconnected: PAUSE      ACKING
 *      UNACK+CLOSE+OPEN ┴──── LEADER <─────────────────────────────┘ ACKED
 *                              │  ^ reconnected, ack ours: UNPAUSE
 *                 disconnected │  │
 *                 PAUSE        v  │
 *                            FENCED ── own timer: DEMOTE ──> DEMOTED ── CONNECTED:
 *                                                              UNACK+CLOSE+OPEN, or
 *                                                              EXPIRED: OPEN ──> IDLE
 *   LEADER ── SIGTERM: ABDICATE ──> ABDICATING ── ABDICATED ──> DONE
 *
 * Safety rules it encodes (README "rzproxy-ctl candidate"):
 *  - a candidate whose redis is down does not stand (no ballot);
 *  - the lowest ballot promotes only through ELECT_DO_PROMOTE, which
 *    fences and compares with the other candidates' servers first (and may
 *    answer "yield": another is ahead, it re-votes at the back);
 *  - a leader that loses ZooKeeper pauses writes at once, resumes only on
 *    the same session, and demotes when its own timer says the session may
 *    be gone: max(disconnect + T/3, last contact + T) - margin, where T is
 *    the negotiated session timeout (the library drops a connection after
 *    2/3 T of silence, so at the disconnect the server still holds the
 *    session for at least T/3);
 *  - a leader whose redis dies gives the leadership up at once;
 *  - SIGTERM on the leader hands over with the fence (ELECT_DO_ABDICATE).
 */
#ifndef RZ_CTL_ELECT_H
#define RZ_CTL_ELECT_H

#include <stddef.h>
#include <stdint.h>

#define ELECT_ADDR_LEN 300           /* "host:port", "[v6]:port" */
#define ELECT_NAME_LEN 64            /* "ballot0000000042" */
#define ELECT_MAX_BALLOTS 64         /* ballots read; more are ignored (logged) */
#define ELECT_RETRY_MS 1000          /* a failed step (not a lost session) is retried after */
#define ELECT_YIELD_DELAY_MS 200     /* re-vote after yielding: not in a hot loop */
#define ELECT_DEMOTE_RETRY_MS 250    /* a demotion refused (successor behind): again after */
#define ELECT_BALLOT_PREFIX "ballot" /* the zk gem's VOTE_PREFIX */
#define ELECT_ACK_NAME "leader_ack"  /* the zk gem's leader_ack_path */

enum elect_state {
    ELECT_IDLE = 0,                  /* not standing: no session yet, or our redis is down */
    ELECT_COUNTING,                  /* ballot cast (or being cast): reading the election */
    ELECT_FOLLOWER,                  /* a lower ballot exists: our redis follows the ack */
    ELECT_PROMOTING,                 /* ours is the lowest: fence, compare, SLAVEOF NO ONE */
    ELECT_ACKING,                    /* our redis is master: creating leader_ack */
    ELECT_LEADER,                    /* leader_ack is ours: the proxies send here */
    ELECT_FENCED,                    /* leader cut from ZooKeeper: writes paused, own timer */
    ELECT_DEMOTED,                   /* the timer ran out: redis demoted; waiting for word */
    ELECT_ABDICATING,                /* SIGTERM as leader: handing over */
    ELECT_DONE,                      /* exit with exit_code */
};
#define ELECT_NSTATES (ELECT_DONE + 1)

enum elect_event_type {
    ELECT_EV_START,                  /* begin */
    ELECT_EV_CONNECTED,              /* session (re)connected (session, timeout_ms) */
    ELECT_EV_DISCONNECTED,           /* connection lost (contact_ms) */
    ELECT_EV_EXPIRED,                /* the session is gone (expired, auth refused) */
    ELECT_EV_REDIS_UP,               /* our redis answers PING again */
    ELECT_EV_REDIS_DOWN,             /* it failed the last few checks (or the child died) */
    ELECT_EV_CHANGED,                /* a watch fired (the ballot below ours, leader_ack) */
    ELECT_EV_RESULT,                 /* an action finished (action, ok, lost, view, why) */
    ELECT_EV_TICK,                   /* time passed */
    ELECT_EV_TERM,                   /* SIGTERM or SIGINT */
    ELECT_EV_CHILD_EXIT,             /* the --exec child exited */
};

/* Actions: a set, carried out in this order (the fence first). */
#define ELECT_DO_PAUSE     (1u << 0)  /* CLIENT PAUSE WRITE on our redis (kept up while paused) */
#define ELECT_DO_UNACK     (1u << 1)  /* delete leader_ack if our session owns it */
#define ELECT_DO_WITHDRAW  (1u << 2)  /* delete our ballot */
#define ELECT_DO_CLOSE     (1u << 3)  /* close the session: its ephemerals go at once */
#define ELECT_DO_DEMOTE    (1u << 4)  /* SLAVEOF demote_to if it holds our writes, unpause */
#define ELECT_DO_OPEN      (1u << 5)  /* open a new session */
#define ELECT_DO_CAST      (1u << 6)  /* create our ballot (ROOT first if missing) */
#define ELECT_DO_COUNT     (1u << 7)  /* read ballots and leader_ack, set the watches */
#define ELECT_DO_PROMOTE   (1u << 8)  /* fence, compare, catch up, SLAVEOF NO ONE */
#define ELECT_DO_ACK       (1u << 9)  /* create leader_ack */
#define ELECT_DO_FOLLOW    (1u << 10) /* SLAVEOF leader, then unpause */
#define ELECT_DO_UNPAUSE   (1u << 11) /* CLIENT UNPAUSE on our redis */
#define ELECT_DO_ABDICATE  (1u << 12) /* the handover (pause, wait, unack, withdraw, close,
                                         follow, unpause) */
#define ELECT_DO_EXIT      (1u << 13) /* stop (the child too) and exit with exit_code */
#define ELECT_NACTIONS 14

/* One ballot as read. */
struct elect_ballot {
    char name[ELECT_NAME_LEN];       /* "ballot0000000042" */
    int64_t seq;                     /* 42: its trailing digits */
    char addr[ELECT_ADDR_LEN];       /* its data: the candidate's host:port */
    int64_t owner;                   /* the session that owns it */
};

/* What ELECT_DO_COUNT found. */
struct elect_view {
    struct elect_ballot ballots[ELECT_MAX_BALLOTS];   /* lowest first */
    int nballots;
    int mine;                        /* index of the ballot our session owns, -1: none */
    int ack_exists;                  /* leader_ack is there */
    char ack_addr[ELECT_ADDR_LEN];   /* its data */
    int64_t ack_owner;               /* its session */
};

struct elect_event {
    enum elect_event_type type;
    uint64_t now_ms;                 /* monotonic */
    int64_t session;                 /* CONNECTED: session id */
    int timeout_ms;                  /* CONNECTED: negotiated session timeout */
    uint64_t contact_ms;             /* DISCONNECTED: last time the server surely heard us
                                        (0: unknown) */
    unsigned action;                 /* RESULT: the one ELECT_DO_* that finished */
    int ok;                          /* RESULT: it did what it should */
    int lost;                        /* RESULT: it failed because the session was lost */
    int yield;                       /* RESULT of PROMOTE: another server is ahead */
    int exit_code;                   /* CHILD_EXIT: what to exit with */
    const struct elect_view *view;   /* RESULT of COUNT */
};

struct elect {
    enum elect_state state;
    char advertise[ELECT_ADDR_LEN];  /* our ballot's and ack's data */
    int connected;                   /* the session is connected */
    int64_t session;                 /* its id (0: none) */
    int timeout_ms;                  /* its negotiated timeout */
    int redis_up;                    /* our redis answers */
    int have_ballot;                 /* our session (may) own a ballot */
    int promoted;                    /* we made our redis master this term (no ack yet) */
    int paused;                      /* we want our redis's writes paused */
    char leader[ELECT_ADDR_LEN];     /* what leader_ack names, "" none */
    char following[ELECT_ADDR_LEN];  /* the master we pointed our redis at, "" none */
    char successor[ELECT_ADDR_LEN];  /* the ballot just above ours, "" none */
    char stale[ELECT_ADDR_LEN];      /* the last leader other than us we knew of */
    uint64_t deadline_ms;            /* FENCED: demote at (monotonic) */
    uint64_t retry_ms;               /* when to retry retry_actions (0: nothing) */
    unsigned retry_actions;
    int exit_code;                   /* DONE: exit status */
    char why[256];                   /* why the last transition happened (for the log) */
};

void elect_init(struct elect *e, const char *advertise);

/* Apply one event; returns the ELECT_DO_* actions to carry out. The new
 * state is e->state, and e->why says why it changed. */
unsigned elect_step(struct elect *e, const struct elect_event *ev);

/* Where DEMOTE points our redis: the leader the ack named if it is not
 * us, else our successor; "" when neither is known. */
const char *elect_demote_target(const struct elect *e);

/* The margin kept before the session may be gone: max(100 ms, T/10). */
int elect_margin_ms(int timeout_ms);

/* When a leader that lost its connection at now_ms must have demoted:
 * max(now + T/3, contact + T) - margin (contact_ms 0: unknown). */
uint64_t elect_deadline(uint64_t now_ms, uint64_t contact_ms, int timeout_ms);

const char *elect_state_name(enum elect_state s);

/* "PAUSE|UNACK|..." for a set of actions, into out. */
void elect_actions_format(unsigned actions, char *out, size_t outlen);

/* A ballot's name as the gem reads it: "ballot" then a sequence number
 * (its trailing digits). 0 and *seq, or -1 when it is not a ballot. */
int elect_ballot_seq(const char *name, int64_t *seq);

/* Sort the view's ballots, lowest sequence first (name breaks ties), and
 * set mine to the index of the ballot owned by session (-1: none). */
void elect_view_sort(struct elect_view *v, int64_t session);

/* Do two addresses name the same server ("h:p", host without case)? */
int elect_same_addr(const char *a, const char *b);

#endif
