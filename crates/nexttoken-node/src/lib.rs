//! Node.js binding of nexttoken. Each exposed class has its own file; work that touches the
//! model runs as a napi `Task` on libuv's thread pool (tasks.rs), never on the JS thread.

mod errors;
mod generation;
mod model;
mod tasks;
mod tokenizer;
