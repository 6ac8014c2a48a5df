//! Black-box and in-process tests of demo-service. One test binary, so that the build links once.

mod admin;
mod alerts;
mod behaviour;
mod compose;
mod faults;
mod gamedays;
mod helpers;
mod history;
mod incidents;
mod kubernetes;
mod load;
mod native;
mod replicas;
mod robustness;
mod routes;
mod seed;
mod service;
mod stack;
mod traces;
