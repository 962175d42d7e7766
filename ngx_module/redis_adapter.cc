#include "ngx_module/redis_adapter.h"

#include <hiredis/async.h>

namespace hookq::edge {
namespace {

// Level-triggered, unlike nginx's own edge-triggered sockets: hiredis reads at most 16 KB per
// redisAsyncHandleRead(), so with a level-triggered fd whatever is left is simply reported again on
// the next turn of the loop instead of being stranded until more bytes arrive.
constexpr ngx_uint_t kLevel = NGX_LEVEL_EVENT;

void on_read(ngx_event_t* ev) noexcept {
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    redisAsyncHandleRead(static_cast<redisAsyncContext*>(c->data));
}

// The connection whose write handler is running: an addWrite() from inside it means hiredis could
// not flush everything (the socket buffer is full), and only epoll can say when to try again.
ngx_connection_t* g_flushing = nullptr;

void on_write(ngx_event_t* ev) noexcept {
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    g_flushing = c;
    redisAsyncHandleWrite(static_cast<redisAsyncContext*>(c->data));
    g_flushing = nullptr;  // c may be gone by now: not touched again
}

void add_read(void* data) noexcept {
    auto* c = static_cast<ngx_connection_t*>(data);
    if (!c->read->active)
        ngx_add_event(c->read, NGX_READ_EVENT, kLevel);
}

void del_read(void* data) noexcept {
    auto* c = static_cast<ngx_connection_t*>(data);
    if (c->read->active)
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
}

// Commands are flushed once per turn of the event loop: the write event is posted rather than
// armed in epoll, so everything this turn's requests queued leaves in one write() and no
// epoll_ctl() is spent per batch. Before the connection is established, and when a flush came up
// short, writability is asked of epoll as usual.
void add_write(void* data) noexcept {
    auto* c = static_cast<ngx_connection_t*>(data);
    auto* ac = static_cast<redisAsyncContext*>(c->data);
    if (c->write->active || c->write->posted)
        return;
    if (g_flushing == c || !(ac->c.flags & REDIS_CONNECTED)) {
        ngx_add_event(c->write, NGX_WRITE_EVENT, kLevel);
        return;
    }
    ngx_post_event(c->write, &ngx_posted_events);
}

void del_write(void* data) noexcept {
    auto* c = static_cast<ngx_connection_t*>(data);
    if (c->write->active)
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
}

// hiredis closes the fd itself right after this; nginx must only forget it.
void cleanup(void* data) noexcept {
    auto* c = static_cast<ngx_connection_t*>(data);
    del_read(c);
    del_write(c);
    // nginx's macro is several statements: the braces matter.
    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }
    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }
    ngx_free_connection(c);  // reads c->fd, so the fd is forgotten only afterwards
    c->fd = static_cast<ngx_socket_t>(-1);
}

}  // namespace

bool attach_to_nginx(redisAsyncContext* ac, ngx_log_t* log) noexcept {
    ngx_connection_t* c = ngx_get_connection(ac->c.fd, log);
    if (c == nullptr)
        return false;
    c->data = ac;
    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->read->handler = on_read;
    c->write->handler = on_write;
    ac->ev.data = c;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return true;
}

}  // namespace hookq::edge
