// Real Yjs clients (yjs + y-websocket) against Demiurge's collab endpoint.
// Usage:
//   node yclient.mjs sync  <ws-base> <writer-token> <writer2-token> <viewer-token>
//   node yclient.mjs write <ws-base> <token> <text>
//   node yclient.mjs read  <ws-base> <token>
// <ws-base> is ws://host/api/v1/projects/<id>; the room name is "collab". Prints one line:
// RESULT {...} or FAIL {...}.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [mode, base, ...args] = process.argv.slice(2)
setTimeout(() => { console.log('FAIL {"error":"timeout"}'); process.exit(2) }, 20000).unref()
const mk = (token) => {
  const doc = new Y.Doc()
  const p = new WebsocketProvider(base, 'collab', doc, { WebSocketPolyfill: WebSocket, params: { token }, disableBc: true })
  return { doc, p }
}
const until = (f) => new Promise((r) => { const c = () => (f() ? r() : setTimeout(c, 20)); c() })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const result = {}
try {
  if (mode === 'sync') {
    const [ta, tb, tv] = args
    const a = mk(ta); const b = mk(tb)
    await until(() => a.p.synced && b.p.synced)
    a.doc.getText('t').insert(0, 'hello from A')
    await until(() => b.doc.getText('t').toString() === 'hello from A')
    b.doc.getMap('m').set('k', 42)
    await until(() => a.doc.getMap('m').get('k') === 42)
    a.p.awareness.setLocalStateField('user', { name: 'A', color: '#f00' })
    await until(() => [...b.p.awareness.getStates().values()].some((s) => s.user?.name === 'A'))
    result.awareness = true
    // A viewer receives everything, but its writes reach no one.
    const v = mk(tv)
    await until(() => v.p.synced && v.doc.getText('t').toString() === 'hello from A')
    v.doc.getText('t').insert(0, 'VIEWER ')
    await sleep(700)
    result.viewer_write_leaked = a.doc.getText('t').toString().includes('VIEWER')
    // A client sending garbage is closed; the others go on.
    const raw = new WebSocket(`${base}/collab?token=${encodeURIComponent(ta)}`)
    const closed = new Promise((r) => raw.on('close', (code) => r(code)))
    await new Promise((r) => raw.on('open', r))
    raw.send(Buffer.from([0x00, 0x07, 0xff, 0xff, 0xff]))
    result.garbage_close = await closed
    a.doc.getText('t').insert(a.doc.getText('t').length, '!')
    await until(() => b.doc.getText('t').toString() === 'hello from A!')
    // A leaves: its awareness state goes from B.
    a.p.destroy()
    await until(() => ![...b.p.awareness.getStates().values()].some((s) => s.user?.name === 'A'))
    result.awareness_removed = true
    result.text = b.doc.getText('t').toString()
    b.p.destroy(); v.p.destroy()
  } else if (mode === 'write') {
    const [t, text] = args
    const c = mk(t)
    await until(() => c.p.synced)
    c.doc.getText('t').insert(c.doc.getText('t').length, text)
    await sleep(500)
    result.text = c.doc.getText('t').toString()
    c.p.destroy()
  } else if (mode === 'read') {
    const c = mk(args[0])
    await until(() => c.p.synced)
    result.text = c.doc.getText('t').toString()
    c.p.destroy()
  }
  console.log('RESULT ' + JSON.stringify(result))
  process.exit(0)
} catch (e) {
  console.log('FAIL ' + JSON.stringify({ ...result, error: String(e) }))
  process.exit(1)
}
