// Talks to Chimera's /api/chat/v2 exactly as a stock AI SDK client does: the request from the `ai`
// package's DefaultChatTransport (what useChat uses), the response read with its own UI message
// stream parser (parseJsonEventStream + uiMessageChunkSchema inside the transport) and assembled by
// readUIMessageStream. Two turns in one chat, then a resume attempt. Prints one JSON document.
// With --tools=a,b the request offers those tools, and tool parts are printed whole.
//
//   node read-chat.mjs [--tools=executeCode] <base url> <api key> ["first question"] ["second question"]
import { DefaultChatTransport, readUIMessageStream } from 'ai';

const args = process.argv.slice(2);
const toolsFlag = args.find((a) => a.startsWith('--tools='));
const tools = toolsFlag ? toolsFlag.slice('--tools='.length).split(',').filter(Boolean) : [];
const [baseUrl, apiKey, first = 'Explain quantum computing', second = 'Say more about qubits'] =
  args.filter((a) => !a.startsWith('--'));
if (!baseUrl || !apiKey) {
  console.error('usage: node read-chat.mjs <base url> <api key> [question] [follow-up]');
  process.exit(2);
}

const transport = new DefaultChatTransport({
  api: `${baseUrl}/api/chat/v2`,
  headers: { Authorization: `Bearer ${apiKey}` },
  body: { config: { model: 'balanced', temperature: 0.5, ...(tools.length ? { tools } : {}) } },
});
const chatId = `node-check-${process.pid}-${Date.now()}`;
const errors = [];

async function turn(messages) {
  const stream = await transport.sendMessages({
    chatId,
    messages,
    trigger: 'submit-message',
    messageId: undefined,
    abortSignal: undefined,
  });
  let message;
  for await (const snapshot of readUIMessageStream({ stream, onError: (e) => errors.push(String(e)) })) {
    message = snapshot;
  }
  return message;
}

const textOf = (message) =>
  message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');

const user1 = { id: 'u1', role: 'user', parts: [{ type: 'text', text: first }] };
const answer1 = await turn([user1]);
const user2 = { id: 'u2', role: 'user', parts: [{ type: 'text', text: second }] };
const answer2 = await turn([user1, answer1, user2]);
const resumed = await transport.reconnectToStream({ chatId });

console.log(
  JSON.stringify({
    chatId,
    errors,
    resumedStream: resumed !== null,
    answers: [answer1, answer2].map((m) => ({
      id: m.id,
      role: m.role,
      text: textOf(m),
      partTypes: m.parts.map((p) => p.type),
      toolParts: m.parts.filter((p) => p.type.startsWith('tool-')),
      metadata: m.metadata,
    })),
  }),
);
