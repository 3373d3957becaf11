"héllo ☃ 𝄞"
