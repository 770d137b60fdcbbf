// An SMTP sink for tests: accepts every message (no auth, no TLS) on 127.0.0.1, parses it,
// and prints one JSON line per message on stdout: {"to": [...], "subject": ..., "text": ...}.
// The first line is {"listening": PORT}. Usage: node smtp_sink.mjs [PORT]   (0 = any free port)
import { SMTPServer } from 'smtp-server'
import { simpleParser } from 'mailparser'

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  onData(stream, session, callback) {
    simpleParser(stream).then((mail) => {
      const to = session.envelope.rcptTo.map((r) => r.address)
      process.stdout.write(JSON.stringify({ to, from: session.envelope.mailFrom.address,
        subject: mail.subject || '', text: mail.text || '' }) + '\n')
      callback()
    }, (err) => callback(err))
  },
})
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: server.server.address().port }) + '\n')
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
