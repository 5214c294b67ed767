// Drives the official Anthropic TypeScript SDK (@anthropic-ai/sdk) against
// the gateway at BASE_URL; TestAnthropicTypeScriptSDK starts it and checks
// the JSON it prints. Routes: "to-an" fails on its OpenAI-compatible first
// target and falls back to an Anthropic-kind one, "to-oa" the other way.
const sdk = require("@anthropic-ai/sdk");
const Anthropic = sdk.default || sdk;
const client = new Anthropic({ baseURL: process.env.BASE_URL, apiKey: "unused", maxRetries: 0 });

const tools = [{ name: "get_weather", description: "weather", input_schema: { type: "object", properties: { city: { type: "string" } } } }];
const hi = (model) => ({ model, max_tokens: 100, messages: [{ role: "user", content: "hi" }] });

async function roundTrip(model) {
  const first = await client.messages.create({ ...hi(model), tools, tool_choice: { type: "any" } });
  const use = first.content.find((b) => b.type === "tool_use");
  const second = await client.messages.create({
    ...hi(model), tools, tool_choice: { type: "none" },
    messages: [
      { role: "user", content: "hi" },
      { role: "assistant", content: first.content },
      { role: "user", content: [
        { type: "tool_result", tool_use_id: use.id, content: "18C" },
        { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
        { type: "text", text: "and this picture?" },
      ] },
    ],
  });
  return { stop: first.stop_reason, tool: use.name, input: use.input, answer: second.content[0].text, answer_stop: second.stop_reason };
}

(async () => {
  const out = {};
  const { data: m, response } = await client.messages.create(hi("to-an")).withResponse();
  out.create = { text: m.content[0].text, stop: m.stop_reason, output_tokens: m.usage.output_tokens,
    provider: response.headers.get("x-switchboard-provider"), attempts: response.headers.get("x-switchboard-attempts") };

  const stream = client.messages.stream(hi("to-oa"));
  let text = "";
  const events = [];
  stream.on("text", (t) => { text += t; });
  stream.on("streamEvent", (e) => events.push(e.type));
  const fin = await stream.finalMessage();
  out.stream = { text, stop: fin.stop_reason, output_tokens: fin.usage.output_tokens, first: events[0], last: events[events.length - 1] };

  out.tools_an = await roundTrip("to-an");
  out.tools_oa = await roundTrip("to-oa");

  try {
    await client.messages.create(hi("no-such-route"));
    out.error = { status: 0 };
  } catch (e) {
    out.error = { status: e.status, type: e.error && e.error.error && e.error.error.type, message: e.error && e.error.error && e.error.error.message };
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
