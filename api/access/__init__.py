"""Access: who is calling and what they may do (keys, scopes, WebSocket tokens and
admission, rate limits), and the guard every request meets before its body is read."""
