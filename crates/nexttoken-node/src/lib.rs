//! Node.js binding of nexttoken: types converted, nothing decided. Each exposed class has its own
//! file (gpt2.rs, call.rs, generation.rs, session.rs, tokenizer.rs); the plain objects JS passes in and
//! gets back are in options.rs (a call's options read by serde through js_value.rs) and outputs.rs. Single forward passes (logits, top-k) run on the addon's task
//! threads and loads on threads of their own (task.rs); generations run in the model's scheduler
//! and settle their promises from there (generation.rs). Nothing runs on the JS thread. device.rs has
//! what the loader probes before it loads the CUDA addon.

mod allocator;
mod call;
mod device;
mod errors;
mod generation;
mod gpt2;
mod js_value;
mod options;
mod outputs;
mod session;
mod task;
mod tokenizer;
