//! Multi-node scenario tests for cloudy-p2p (see tests/).
